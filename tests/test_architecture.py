"""Import rules of STYLE.md, checked on the AST: pure modules stay pure, edges stay at the edge."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "modbot"
PURE = [
    "events.py",
    "euler/policy.py",
    "euler/scopes.py",
    "euler/routes.py",
    "euler/tokens.py",
    "rules",
    "actions/plan.py",
    "audit/query.py",
    "audit/undo.py",
]
IMPURE_MODULES = {"anyio", "httpx", "aiosqlite", "structlog", "websockets", "uvicorn", "starlette"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _pure_files() -> list[Path]:
    files: list[Path] = []
    for entry in PURE:
        target = PACKAGE / entry
        if target.is_dir():
            files.extend(sorted(target.rglob("*.py")))
        elif target.exists():
            files.append(target)
    return files


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_modules_do_no_io(path: Path):
    """Pure modules import no async, network, database or logging library, nor the time module."""
    imported = _imports(path)
    roots = {name.split(".")[0] for name in imported}
    assert not roots & IMPURE_MODULES, sorted(roots & IMPURE_MODULES)
    assert "time" not in roots
    assert "datetime.datetime.now" not in imported
    assert "now(" not in path.read_text(encoding="utf-8").replace("def now(", "")


def test_only_euler_imports_httpx():
    """httpx and websockets are seen only by modbot.euler."""
    for path in _modules():
        rel = path.relative_to(PACKAGE)
        roots = {name.split(".")[0] for name in _imports(path)}
        if rel.parts[0] != "euler":
            assert not roots & {"httpx", "websockets"}, rel


def test_only_the_audit_store_imports_aiosqlite():
    """aiosqlite is used by modbot/audit/store.py alone."""
    for path in _modules():
        rel = path.relative_to(PACKAGE)
        if "aiosqlite" in {name.split(".")[0] for name in _imports(path)}:
            assert rel == Path("audit/store.py")


def test_nothing_imports_the_composition_roots():
    """No module imports modbot.cli or modbot.daemon (they sit on top; the demo runs the daemon)."""
    for path in _modules():
        if path.name in ("cli.py", "daemon.py", "demo.py", "__main__.py"):
            continue
        imported = _imports(path)
        assert not {"modbot.cli", "modbot.daemon"} & imported, path
