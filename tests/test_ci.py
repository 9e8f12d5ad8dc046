""".ci/run runs the README's test command as written (issue 20, item 1).

The README's two commands are its first two ``sh`` blocks. ``.ci/run`` takes the second
from README.md (``--print-readme-command`` shows what it runs) and runs it in a fresh
``.ci-venv`` with the pip that venv brings, so a README command that breaks fails CI;
these tests check that the two agree and that the command suits an old pip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
CI = REPO / ".ci" / "run"


def sh_blocks(readme: str) -> list[str]:
    return [
        m.group(1).strip()
        for m in re.finditer(r"^```sh\n(.*?)^```$", readme, re.MULTILINE | re.DOTALL)
    ]


def readme_commands(readme_path: Path = REPO / "README.md") -> tuple[str, str]:
    blocks = sh_blocks(readme_path.read_text(encoding="utf-8"))
    return blocks[0], blocks[1]


def ci_prints(checkout: Path) -> list[str]:
    done = subprocess.run(
        ["bash", str(checkout / ".ci" / "run"), "--print-readme-command"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed for .ci/run")
def test_ci_runs_the_readmes_test_command() -> None:
    demo, tests = readme_commands()
    assert demo.endswith("pip install . && modbot demo")
    install, last = ci_prints(REPO)
    # The same command, in CI's own venv, split before its last step.
    assert f"{install.replace('.ci-venv', '.venv')} && {last}" == tests
    assert last == "pytest"
    # .ci/run evaluates both parts (and not some command of its own).
    script = [line.strip() for line in CI.read_text(encoding="utf-8").splitlines()]
    assert any(line.startswith('eval "$install_part"') for line in script)
    assert 'eval "$test_part"' in script
    assert "rm -rf .ci-venv" in script  # the machine's default pip, in a fresh venv


def test_the_test_command_suits_the_pip_of_a_fresh_venv() -> None:
    """pip before 25.1 has no --group: the command upgrades pip before it uses one."""
    _, tests = readme_commands()
    steps = [step.strip() for step in tests.split("&&")]
    assert steps[:2] == ["python3 -m venv .venv", ". .venv/bin/activate"]
    grouped = [i for i, step in enumerate(steps) if "--group" in step]
    if grouped:
        assert "pip install --upgrade pip" in steps[: grouped[0]]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed for .ci/run")
def test_ci_follows_an_edited_readme(tmp_path: Path) -> None:
    """.ci/run reads README.md each time: a changed command is what CI runs, and a
    second block that is not one `... && pytest` command stops CI."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(CI, tmp_path / ".ci" / "run")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    _, tests = readme_commands()
    changed = tests.replace("pip install --upgrade pip && ", "")
    (tmp_path / "README.md").write_text(readme.replace(tests, changed), encoding="utf-8")
    assert ci_prints(tmp_path)[0] == changed.removesuffix(" && pytest").replace(".venv", ".ci-venv")

    (tmp_path / "README.md").write_text(readme.replace(tests, "pip install -e ."), encoding="utf-8")
    done = subprocess.run(
        ["bash", str(tmp_path / ".ci" / "run"), "--print-readme-command"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "second sh block must be one command ending in '&& pytest'" in done.stderr
