"""Wheel build hook: with ``MODBOT_COMPILE=1``, the per-event path is compiled by mypyc.

The modules every event goes through (decoding, the event record, the rule engine with
its text matching and state, the watcher and its hand-off to the engine in
``modbot/streams.py``, the intents: ``COMPILED``) are compiled to C extensions by mypyc,
which ships with mypy: the annotations that ``mypy --strict`` checks become native code.
Without the variable, or for an editable install, the wheel is pure Python.

    MODBOT_COMPILE=1 pip install .        # needs a C compiler and the Python headers

**The reference is the pure build.** The tests define what modbot does, and they run
against the sources as they are (``pytest`` in a checkout, an editable install). The
compiled build is an optimisation that must pass the same tests: CI builds the wheel
and runs the compiled modules' tests against it (rules, decoder, watcher, actions,
fuzz, daemon; ``.ci/run``). A difference between the builds is a bug in the source's
use of mypyc, never a reason to change a test; and code shaped for mypyc must not make
the pure build slower than the plain version it replaces (STYLE.md: a trick lives in
the one hot function that needs it, next to a plain version a property test compares
it with). Deciding takes about a third less CPU compiled; the figures of both builds
are in docs/benchmarks.md.

**What the compiled build demands of the source** (mypyc 2.4.1, the lint group's pin):

- Annotations that are true at run time. A compiled function checks its arguments,
  its return value and the attributes it assigns, so a value that contradicts an
  annotation raises ``TypeError`` in this build only (the fuzz tests keep that from
  happening); a pure build would carry it on.
- No async generators (``yield`` inside ``async def``): "unimplemented".
- Exception classes (and other subclasses of builtins) derive only from ``object``,
  ``dict``, ``BaseException``, ``Exception``, ``ValueError``, ``LookupError``,
  ``IndexError``, ``Warning`` or ``UserWarning``: ``EventError(ValueError)`` builds,
  a subclass of ``KeyError`` or ``RuntimeError`` does not.
- No lone surrogates in string literals (build them with ``chr()``).
- Nothing monkeypatched: calls inside and between compiled modules are bound at build
  time, so patching a module attribute or a method does not reach them (the tests that
  CI runs against the wheel must not rely on it).
- Classes stay as declared: no interpreted subclasses of a compiled class, no
  attributes added to an instance beyond those the class declares.

The sources are compiled in a temporary copy, never next to the checkout's own files,
where an extension module would shadow the ``.py`` being edited.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# The hot path. Each must stay mypyc-compatible: no surrogates in string literals, no
# async generators, no subclasses of builtin exceptions, nothing monkeypatched, no
# interpreted subclasses of its classes.
COMPILED = (
    "modbot/events.py",
    "modbot/euler/decode.py",
    # a package, compiled module by module; its __init__ only re-exports, and stays Python
    "modbot/rules/text/tables.py",
    "modbot/rules/text/normalize.py",
    "modbot/rules/text/matcher.py",
    "modbot/rules/text/links.py",
    "modbot/rules/text/measures.py",
    "modbot/rules/text/reader.py",
    "modbot/rules/state.py",
    "modbot/rules/conditions.py",
    "modbot/rules/engine.py",
    "modbot/actions/plan.py",
    "modbot/euler/watcher.py",
    # the watcher's hand-off (send_nowait_or_wait), called once an event: one coroutine,
    # no class, no async generator
    "modbot/streams.py",
)
MYPY_CONFIG = """\
[mypy]
strict = True
# The build environment has only the build's own requirements: third-party types are Any
# (whether an installer's isolated environment hides the others depends on its version),
# so the checks about Any are left to the lint run (`mypy`), which has every package.
ignore_missing_imports = True
disallow_subclassing_any = False
warn_return_any = False
warn_unused_ignores = False
"""


def wanted() -> bool:
    return os.environ.get("MODBOT_COMPILE", "").strip().lower() in {"1", "true", "yes"}


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles ``COMPILED`` into the wheel when ``MODBOT_COMPILE=1``."""

    _work: Path | None = None

    def dependencies(self) -> list[str]:
        return [self._mypy(), "setuptools>=70"] if wanted() else []

    def _mypy(self) -> str:
        """The mypy the lint group pins (mypyc is part of it): one version for both."""
        project = tomllib.loads((Path(self.root) / "pyproject.toml").read_text())
        lint = project["dependency-groups"]["lint"]
        return next(d for d in lint if isinstance(d, str) and d.startswith("mypy=="))

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if not wanted():
            return
        if version == "editable":
            self.app.display_warning(
                "MODBOT_COMPILE is ignored for an editable install: the sources run as they are"
            )
            return
        self._work = work = Path(tempfile.mkdtemp(prefix="modbot-mypyc-"))
        root = Path(self.root)
        shutil.copytree(
            root / "modbot",
            work / "modbot",
            ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"),
        )
        (work / "mypy.ini").write_text(MYPY_CONFIG)
        self.app.display_info(f"compiling {len(COMPILED)} modules with mypyc")
        done = subprocess.run(  # noqa: S603 (this interpreter, our own module list)
            [sys.executable, "-m", "mypyc", "--config-file", "mypy.ini", *COMPILED],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            msg = (
                "mypyc could not compile modbot (unset MODBOT_COMPILE for a pure-Python "
                f"build):\n{done.stdout}{done.stderr}"
            )
            raise RuntimeError(msg)
        built = sorted(
            p
            for p in work.rglob("*")
            if p.suffix in {".so", ".pyd"} and "build" not in p.relative_to(work).parts
        )
        if not built:
            msg = f"mypyc reported success but left no extension modules:\n{done.stdout}"
            raise RuntimeError(msg)
        for path in built:
            build_data["force_include"][str(path)] = str(path.relative_to(work))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(
        self,
        version: str,  # noqa: ARG002 (the hook's signature)
        build_data: dict[str, Any],  # noqa: ARG002
        artifact_path: str,  # noqa: ARG002
    ) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None
