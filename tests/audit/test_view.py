"""The audit views against hostile text (review L3 d): a table for a terminal, CSV for a
spreadsheet, JSON lines for scripts; entries written to and read from a real database."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from modbot.audit import view
from modbot.audit.query import AuditFilter
from modbot.audit.store import AuditStore, Entry, NewEntry
from modbot.fake.clock import FakeClock
from tests.hostile import PAYLOADS, raw_invisible

# What the old class in view.py missed, and the review saw in the table and the CSV.
WIDENED = {"\u061c", "\ufeff", "\u2060", "\u2061", "\u2064", "\U000e0001", "\U000e0041"}


async def _entries(tmp_path: Path, payload: str) -> list[Entry]:
    clock = FakeClock()

    def hostile(**fields: object) -> NewEntry:
        base: dict[str, object] = {
            "ts": clock.now(),
            "streamer": "host" + payload,
            "room_id": "1",
            "user_id": "68001",
            "unique_id": "viewer" + payload,
            "mode": "enforce",
            "detail": "matched " + payload,
            "msg_text": "hello " + payload,
        }
        return NewEntry(**{**base, **fields})  # type: ignore[arg-type]

    async with AuditStore.open(tmp_path / "audit.db") as store:
        await store.add(
            [
                hostile(
                    msg_id="m1",
                    rule="r" + payload,
                    action="mute",
                    status="done",
                    params={"duration_s": 60},
                ),
                hostile(
                    msg_id="m2",
                    rule="reply-rule",
                    action="reply",
                    status="failed",
                    params={"text": "thanks @" + payload},
                    error="API said: " + payload,
                ),
            ],
            clock.now(),
        )
        return await store.query(AuditFilter())


@pytest.mark.parametrize("name", sorted(PAYLOADS))
async def test_the_table_shows_nothing_raw(tmp_path: Path, name: str) -> None:
    entries = await _entries(tmp_path, PAYLOADS[name])
    text = view.table(entries)
    assert raw_invisible(text, allowed="\n") == []
    assert len(text.splitlines()) == 1 + len(entries)  # no forged line
    assert "?" in text


@pytest.mark.parametrize("name", sorted(PAYLOADS))
async def test_csv_cells_show_nothing_raw(tmp_path: Path, name: str) -> None:
    entries = await _entries(tmp_path, PAYLOADS[name])
    text = view.csv_text(entries)
    assert raw_invisible(text, allowed="\n") == []
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 1 + len(entries)
    assert len(text.splitlines()) == len(rows)


@pytest.mark.parametrize("name", sorted(PAYLOADS))
async def test_json_lines_keep_the_text_and_show_nothing_raw(tmp_path: Path, name: str) -> None:
    entries = await _entries(tmp_path, PAYLOADS[name])
    text = view.json_lines(entries)
    assert text.isascii()
    lines = text.splitlines()
    assert len(lines) == len(entries)
    assert {json.loads(line)["text"] for line in lines} == {"hello " + PAYLOADS[name]}


@pytest.mark.parametrize("char", sorted(WIDENED))
async def test_format_characters_the_old_class_missed(tmp_path: Path, char: str) -> None:
    """U+061C, U+FEFF, U+2060-U+2064 and the tag characters are shown as ``?`` too."""
    entries = await _entries(tmp_path, f"x{char}y")
    for text in (view.table(entries), view.csv_text(entries)):
        assert char not in text
    assert "viewerx?y" in view.table(entries)
