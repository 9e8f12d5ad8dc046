"""Test helpers that are not fixtures: the repository's root, and the harness by one name.

The test-only harness is ``tests.harness``; what ``bench/`` shares is ``modbot.fake.harness``.
"""

from __future__ import annotations

from pathlib import Path

from modbot.fake.harness import fake_and_portal, start_run, wait
from tests.harness import statuses, until

REPO = Path(__file__).parent.parent

__all__ = ["REPO", "fake_and_portal", "start_run", "statuses", "until", "wait"]
