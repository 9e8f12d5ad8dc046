"""``AuditStore.open_readonly`` (``modbot audit``): reads, never creates, writes or migrates."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from modbot.audit.query import AuditFilter
from modbot.audit.schema import VERSION
from modbot.audit.store import AuditStore, NewEntry
from modbot.errors import AuditError, ConfigError
from modbot.fake.clock import FakeClock


def _row(clock: FakeClock, msg_id: str) -> NewEntry:
    return NewEntry(
        ts=clock.now(), streamer="host", rule="r", action="mute", mode="enforce", status="done",
        msg_id=msg_id,
    )  # fmt: skip


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_it_reads_while_the_daemon_writes(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "audit.db"
    async with AuditStore.open(path) as writer:
        await writer.add([_row(clock, "a")], clock.now())
        async with AuditStore.open_readonly(path) as reader:
            assert [e.msg_id for e in await reader.query(AuditFilter())] == ["a"]
            await writer.add([_row(clock, "b")], clock.now())
            assert len(await reader.query(AuditFilter())) == 2
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                await reader.db.execute("DELETE FROM actions")


async def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="there is no audit database"):
        async with AuditStore.open_readonly(tmp_path / "audit.db"):
            pass
    assert _names(tmp_path) == []


async def test_an_empty_file_stays_empty(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    path.write_bytes(b"")
    with pytest.raises(AuditError, match="not a modbot audit database"):
        async with AuditStore.open_readonly(path):
            pass
    assert path.read_bytes() == b""
    assert _names(tmp_path) == ["audit.db"]


@pytest.mark.parametrize(("version", "error"), [(VERSION + 1, ConfigError), (1, AuditError)])
async def test_another_schema_version_is_named_not_migrated(
    tmp_path: Path, version: int, error: type[Exception]
) -> None:
    path = tmp_path / "audit.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE actions (id INTEGER)")
        con.execute(f"PRAGMA user_version = {version}")
    if version == VERSION:
        pytest.skip("the schema has one version only")
    with pytest.raises(error, match=f"schema version {version}"):
        async with AuditStore.open_readonly(path):
            pass
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA user_version").fetchone() == (version,)
