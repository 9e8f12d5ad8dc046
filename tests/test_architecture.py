"""The structure STYLE.md promises, checked: pure modules stay pure, layers point down.

Three rules, each checked on modbot's own import graph (read from the AST; imports under
``if TYPE_CHECKING:`` are for the type checker only and do not count, imports inside
functions do):

- a pure module's whole import closure (every modbot module it reaches, and theirs)
  uses no async, network, database or logging library, and reads no clock; the same is
  checked at run time, by importing the module in a fresh interpreter;
- each module sits in a layer (``LAYERS``, bottom first) and imports only from its own
  layer or below; the few arrows that go up are named in ``UPWARD`` with their reason;
- only the demo (and the fake itself) imports ``modbot.fake``; tests and ``bench/`` may.

The checkers are plain functions over a graph, so the tests at the end plant a
violation in a package of their own and see the check fail.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "modbot"

# Pure modules (paths under modbot/; a folder means every module in it). STYLE.md marks
# them P: no I/O, no anyio, no clock reads; they take plain values and return plain values.
PURE = (
    "errors.py",
    "events.py",
    "inert.py",
    "euler/decode.py",
    "euler/policy.py",
    "euler/routes.py",
    "euler/scopes.py",
    "euler/tokens.py",
    "rules",
    "actions/table.py",
    "actions/plan.py",
    "actions/gate.py",
    "actions/nuke.py",
    "actions/recent.py",
    "actions/memory.py",
    "actions/humans.py",
    "actions/manual.py",
    "audit/query.py",
    "audit/records.py",
    "audit/stats.py",
    "audit/view.py",
)
# Libraries that do I/O, wait, or log: none may be reached from a pure module.
IMPURE = frozenset(
    {
        "aiosqlite",
        "anyio",
        "httpx",
        "sniffio",
        "sqlite3",
        "starlette",
        "structlog",
        "time",
        "uvicorn",
        "websockets",
    }
)
# At run time ``time`` is always loaded (the standard library uses it), so the run-time
# check looks for the others; the AST check covers ``time``.
IMPURE_AT_RUN_TIME = IMPURE - {"time"}
# Calls that read the wall clock without an injected clock.
CLOCK_READS = frozenset({"datetime.now", "datetime.utcnow", "datetime.today", "date.today"})

# Bottom first. A module may import from its own layer and the layers below. An entry
# names a module or a package with all it holds, and the most specific entry gives a
# module's layer (``modbot.actions.table`` before ``modbot.actions``). Every package is
# named; a top-level module that is not falls under ``modbot``, at the bottom, where it
# may import nothing from above.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",  # no knowledge of TikTok, rules or actions
        (
            "modbot",
            "modbot.__about__",
            "modbot.events",
            "modbot.errors",
            "modbot.clock",
            "modbot.inert",
            "modbot.log",
            "modbot.files",
            "modbot.loopback",
            "modbot.sdnotify",
            "modbot.streams",
        ),
    ),
    ("vocabulary", ("modbot.actions.table",)),  # the action table, read by every layer above
    ("rules", ("modbot.rules",)),  # the pure rule core
    ("euler", ("modbot.euler",)),  # the Euler edge: the event source and the API client
    ("config", ("modbot.config",)),  # one Settings, validated at the edge
    ("audit", ("modbot.audit",)),  # the sink everything that acts writes to
    ("actions", ("modbot.actions",)),  # decisions -> intents -> calls and rows
    ("daemon", ("modbot.daemon",)),  # the composition root of `modbot run`
    ("fake", ("modbot.fake",)),  # the fake Euler service: for the demo, tests and bench
    ("demo", ("modbot.demo",)),
    ("cli", ("modbot.cli", "modbot.__main__")),
)
# Arrows that go up, each with its reason: (importer, imported) -> why.
UPWARD: dict[tuple[str, str], str] = {
    ("modbot.rules.compile", "modbot.euler.scopes"): (
        "`rules check` warns about actions the granted scopes cannot do; scopes is pure"
    ),
    ("modbot.euler.session", "modbot.config"): (
        "the session builder takes Settings; it assembles the client for daemon and CLI"
    ),
}
# Who may import modbot.fake, besides the fake itself (tests and bench/ live outside).
FAKE_USERS = frozenset({"modbot.demo"})


# --- the graph -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    """One module of a package: where it is and what it imports."""

    name: str
    path: Path
    internal: frozenset[str]  # modules of the package it imports, as written
    external: frozenset[str]  # other modules it imports, dotted names as written
    clock_reads: frozenset[str]  # ``datetime.now`` and the like, as called


Graph = Mapping[str, Module]


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """Every node that runs, leaving out the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def scan(root: Path) -> dict[str, Module]:
    """The import graph of the package in ``root`` (a folder with ``__init__.py``)."""
    paths = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, Module] = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        written: set[str] = set()
        clock: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                written.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, or level - 1 packages up
                    parts = package.split(".")
                    anchor = ".".join(parts[: len(parts) - node.level + 1])
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    written.add(full if full in paths else base)
            elif isinstance(node, ast.Call):
                called = _dotted(node.func)
                if any(called == r or called.endswith(f".{r}") for r in CLOCK_READS):
                    clock.add(called)
        internal = {t for t in written if t in paths}
        external = {t for t in written if t.split(".")[0] != root.name}
        graph[name] = Module(
            name, path, frozenset(internal - {name}), frozenset(external), frozenset(clock)
        )
    return graph


def impurities(graph: Graph, start: str) -> list[str]:
    """Every impure import and clock read reachable from ``start``, each with its path."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    found: list[str] = []
    while queue:
        name = queue.popleft()
        module = graph[name]
        chain = [name]
        while (back := came_from[chain[-1]]) is not None:
            chain.append(back)
        via = " -> ".join(reversed(chain))
        found.extend(
            f"{via} -> {ext}" for ext in sorted(module.external) if ext.split(".")[0] in IMPURE
        )
        found.extend(f"{via} calls {call}()" for call in sorted(module.clock_reads))
        for nxt in sorted(module.internal | _ancestors(name)):
            if nxt not in came_from:
                came_from[nxt] = name
                queue.append(nxt)
    return found


def _ancestors(name: str) -> set[str]:
    """The packages whose ``__init__`` runs before ``name`` does."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def layer_of(name: str, layers: tuple[tuple[str, tuple[str, ...]], ...] = LAYERS) -> int:
    """The index of the layer whose longest matching entry names ``name``."""
    best, where = -1, -1
    for index, (_, entries) in enumerate(layers):
        for entry in entries:
            if (name == entry or name.startswith(f"{entry}.")) and len(entry) > best:
                best, where = len(entry), index
    return where


def upward(
    graph: Graph,
    layers: tuple[tuple[str, tuple[str, ...]], ...] = LAYERS,
    allowed: Mapping[tuple[str, str], str] = UPWARD,
) -> list[str]:
    """Imports from a higher layer than the importer's, other than the allowed ones."""
    names = [layer for layer, _ in layers]
    found = []
    for module in graph.values():
        here = layer_of(module.name, layers)
        for target in sorted(module.internal):
            there = layer_of(target, layers)
            if there > here and (module.name, target) not in allowed:
                found.append(f"{module.name} ({names[here]}) imports {target} ({names[there]})")
    return found


def pure_modules(graph: Graph, pure: Iterable[str] = PURE, root: Path = PACKAGE) -> list[str]:
    names = []
    for entry in pure:
        target = root / entry
        names.extend(
            sorted(m.name for m in graph.values() if m.path == target or target in m.path.parents)
        )
    return names


def reach(graph: Graph, start: str) -> set[str]:
    """The modules that importing ``start`` runs (``start`` included)."""
    seen, todo = {start}, [start]
    while todo:
        name = todo.pop()
        for nxt in graph[name].internal | _ancestors(name):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def tops(graph: Graph, names: Iterable[str]) -> list[str]:
    """Those of ``names`` that no other of them imports: loading these loads them all."""
    names = list(names)
    below = {m for n in names for m in reach(graph, n) - {n}}
    return [n for n in names if n not in below]


def loaded_at_run_time(module: str, path: Path = ROOT) -> set[str]:
    """The top-level names in ``sys.modules`` after importing ``module`` in a new interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=path, capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout))


GRAPH = scan(PACKAGE)


# --- modbot holds to them ------------------------------------------------------------------


def test_every_listed_file_exists():
    """Each pure entry, layer entry and allowed arrow names a module that exists."""
    missing = [entry for entry in PURE if not (PACKAGE / entry).exists()]
    missing += [e for _, entries in LAYERS for e in entries if e not in GRAPH]
    missing += [m for pair in UPWARD for m in pair if m not in GRAPH]
    missing += [m for m in FAKE_USERS if m not in GRAPH]
    assert missing == []


def test_every_package_has_a_layer():
    """Each subpackage of modbot is placed in the layer table, by itself or a parent."""
    named = {e for _, entries in LAYERS for e in entries} - {PACKAGE.name}
    unplaced = [
        m.name
        for m in GRAPH.values()
        if m.path.name == "__init__.py"
        and m.name != PACKAGE.name
        and not any(m.name == e or m.name.startswith(f"{e}.") for e in named)
    ]
    assert unplaced == []


def test_every_allowed_upward_import_is_still_made():
    """An arrow in UPWARD that no longer exists is taken out of the table."""
    stale = [pair for pair in UPWARD if pair[1] not in GRAPH[pair[0]].internal]
    assert stale == []


@pytest.mark.parametrize("module", pure_modules(GRAPH))
def test_pure_modules_reach_no_io(module: str):
    """Nothing a pure module imports, directly or through other modules, does I/O or reads the clock."""
    assert impurities(GRAPH, module) == []


@pytest.mark.parametrize("module", tops(GRAPH, pure_modules(GRAPH)))
def test_pure_modules_load_no_io_library(module: str):
    """Imported in a fresh interpreter, a pure module (and all it imports) loads no I/O library."""
    assert sorted(loaded_at_run_time(module) & IMPURE_AT_RUN_TIME) == []


def test_layers_point_down():
    """Each module imports from its own layer or below, but for the named exceptions."""
    assert upward(GRAPH) == []


def test_only_the_demo_imports_the_fake():
    """modbot.fake is for the demo, the tests and bench/: nothing else in modbot imports it."""
    users = {
        m.name
        for m in GRAPH.values()
        if any(t == "modbot.fake" or t.startswith("modbot.fake.") for t in m.internal)
        and not m.name.startswith("modbot.fake")
    }
    assert users <= FAKE_USERS


def test_only_euler_imports_httpx():
    """httpx and websockets are seen only by modbot.euler."""
    for module in GRAPH.values():
        roots = {name.split(".")[0] for name in module.external}
        if not module.name.startswith("modbot.euler"):
            assert not roots & {"httpx", "websockets"}, module.name


def test_only_the_audit_store_imports_aiosqlite():
    """aiosqlite is used by modbot/audit/store.py alone."""
    users = {m.name for m in GRAPH.values() if "aiosqlite" in {e.split(".")[0] for e in m.external}}
    assert users == {"modbot.audit.store"}


# --- the checks catch what they are for ----------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "planted"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


PLANTED = {
    "core/__init__.py": "",
    "core/pure.py": "from . import helper\n",
    "core/helper.py": "from planted.store import save\n",
    "store.py": "import aiosqlite\n\ndef save() -> None: ...\n",
}


def test_a_transitive_aiosqlite_import_is_caught(tmp_path: Path):
    """A pure module that reaches aiosqlite two modules away fails, with the path shown."""
    graph = scan(_package(tmp_path, PLANTED))
    assert impurities(graph, "planted.core.pure") == [
        "planted.core.pure -> planted.core.helper -> planted.store -> aiosqlite"
    ]
    assert impurities(graph, "planted.core") == []


def test_a_transitive_aiosqlite_import_is_caught_at_run_time(tmp_path: Path):
    """The run-time check sees the same planted import in sys.modules."""
    root = _package(tmp_path, PLANTED)
    assert "aiosqlite" in loaded_at_run_time("planted.core.pure", root.parent)
    assert "aiosqlite" not in loaded_at_run_time("planted.core", root.parent)


def test_imports_for_the_type_checker_only_do_not_count(tmp_path: Path):
    """An import under ``if TYPE_CHECKING:`` is not followed; one inside a function is."""
    root = _package(
        tmp_path,
        {
            **PLANTED,
            "typed.py": """\
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from planted.store import save
                """,
            "lazy.py": """\
                def later() -> None:
                    from planted.store import save
                """,
            "clocked.py": """\
                from datetime import datetime
                def stamp() -> object:
                    return datetime.now()
                """,
        },
    )
    graph = scan(root)
    assert impurities(graph, "planted.typed") == []
    assert impurities(graph, "planted.lazy") == ["planted.lazy -> planted.store -> aiosqlite"]
    assert impurities(graph, "planted.clocked") == ["planted.clocked calls datetime.now()"]


def test_an_upward_import_is_caught(tmp_path: Path):
    """A lower layer importing a higher one fails unless the arrow is allowed by name."""
    root = _package(
        tmp_path,
        {
            "low.py": "from planted.high import thing\n",
            "high.py": "from planted.low import other\n\nthing = other = 1\n",
        },
    )
    graph = scan(root)
    layers = (("bottom", ("planted", "planted.low")), ("top", ("planted.high",)))
    assert upward(graph, layers, {}) == ["planted.low (bottom) imports planted.high (top)"]
    assert upward(graph, layers, {("planted.low", "planted.high"): "a named reason"}) == []
