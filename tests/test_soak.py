"""The crash-restart soak, bounded: bench/soak.py with a few SIGKILLs (the 20-kill run with
unmute timers is `python bench/soak.py`, minutes long, reported in the closing notes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.mark.timeout(120)
def test_sigkill_and_restart_loses_nothing() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--kills", "6", "--mute", "30s"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("soak: 6 SIGKILLs in ")
    assert done.stdout.rstrip().endswith("; OK")
