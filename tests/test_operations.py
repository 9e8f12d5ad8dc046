"""`modbot audit`, `modbot undo` and `modbot record` as users and scripts run them."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from modbot.audit.store import AuditStore, NewEntry, default_db
from modbot.cli import audit_main, main
from modbot.euler.oauth import TokenStore
from modbot.euler.tokens import token_set_from_answer
from modbot.fake import messages as m
from modbot.fake.server import FakeEuler

# No MODBOT_ settings from the machine; the working directory is empty.
pytestmark = pytest.mark.usefixtures("isolated")


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdout=out)
    return code, out.getvalue()


def seed(state: Path, entries: list[NewEntry]) -> list[int]:
    async def write() -> list[int]:
        async with AuditStore.open(default_db(state)) as store:
            ids = await store.add(entries, datetime.now(UTC))
        return [i for i in ids if i is not None]

    return anyio.run(write)


def entry(action: str, status: str = "done", **fields: object) -> NewEntry:
    base: dict[str, object] = {
        "ts": datetime.now(UTC),
        "streamer": "host_handle",
        "rule": "slurs",
        "action": action,
        "mode": "enforce",
        "status": status,
        "room_id": "7300000000000000001",
        "user_id": "6811111111111111111",
        "unique_id": "troll",
        "msg_text": "some text",
    }
    base.update(fields)
    return NewEntry(**base)  # type: ignore[arg-type]


def grant(fake: FakeEuler, state: Path) -> None:
    answer = fake.issue_tokens(
        [
            "webcast:mute",
            "webcast:ban",
            "webcast:comments",
            "webcast:chat",
            "webcast:bulk_live_check",
        ]
    )
    TokenStore(state).save(token_set_from_answer(answer, time.time()))


class TestAudit:
    def test_table_json_and_csv(self, tmp_path: Path) -> None:
        """People get a table; scripts get one JSON object per entry, or CSV."""
        state = tmp_path / "state"
        seed(state, [entry("ban"), entry("mute", params={"duration_s": 600}, rule="insults")])
        code, table = run_cli("audit", "--state-dir", str(state))
        assert code == 0
        assert table.splitlines()[0].split()[:3] == ["ID", "TIME", "(UTC)"]
        assert "mute 10m" in table
        code, out = run_cli("audit", "--state-dir", str(state), "--format", "json")
        objects = [json.loads(line) for line in out.splitlines()]
        assert [o["action"] for o in objects] == ["mute", "ban"]
        required = {
            "id",
            "ts",
            "streamer",
            "room_id",
            "user_id",
            "unique_id",
            "rule",
            "action",
            "params",
            "mode",
            "status",
            "undo_of",
            "undone_by",
            "detail",
        }
        assert required <= objects[0].keys()
        code, out = run_cli(
            "audit", "--state-dir", str(state), "--format", "csv", "--rule", "slurs"
        )
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [r["action"] for r in rows] == ["ban"]

    def test_filters_and_errors(self, tmp_path: Path) -> None:
        state = tmp_path / "state"
        seed(state, [entry("ban"), entry("reply", status="observed", mode="observe")])
        code, out = run_cli(
            "audit", "--state-dir", str(state), "--status", "observed", "--format", "json"
        )
        assert [json.loads(x)["action"] for x in out.splitlines()] == ["reply"]
        assert run_cli("audit", "--state-dir", str(state), "--since", "yesterday")[0] == 2
        assert run_cli("audit", "--state-dir", str(state), "--status", "finished")[0] == 2
        assert run_cli("audit", "--state-dir", str(tmp_path / "none"))[0] == 1
        code, out = run_cli("audit", "--state-dir", str(state), "--user", "@nobody")
        assert (code, out) == (0, "No audit entries match.\n")

    def test_modbot_audit_is_the_same_command(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        state = tmp_path / "state"
        seed(state, [entry("ban")])
        assert audit_main(["--state-dir", str(state), "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["action"] == "ban"


class TestUndo:
    def test_undo_once_linked_both_ways(self, euler_env: FakeEuler, tmp_path: Path) -> None:
        fake = euler_env
        state = tmp_path / "state"
        grant(fake, state)
        room = fake.streamer("host_handle")
        room.bans.add("6811111111111111111")
        (ban_id,) = seed(state, [entry("ban", room_id=room.room_id)])
        code, out = run_cli("undo", str(ban_id), "--state-dir", str(state), "--reason", "appeal ok")
        assert code == 0, out
        assert out.startswith(f"#{ban_id}: undone by #")
        assert "6811111111111111111" not in room.bans
        assert len(fake.calls_to("unban", ok_only=True)) == 1
        code, out = run_cli("audit", "--state-dir", str(state), "--format", "json")
        undo_row, ban_row = (json.loads(x) for x in out.splitlines())
        assert (undo_row["action"], undo_row["undo_of"], undo_row["reason"]) == (
            "unban",
            ban_id,
            "appeal ok",
        )
        assert ban_row["undone_by"] == undo_row["id"]
        # A second undo is refused, and nothing is called.
        code, out = run_cli("undo", str(ban_id), "--state-dir", str(state))
        assert code == 1
        assert f"#{ban_id}: not undone: #{ban_id} was already undone by #{undo_row['id']}" in out
        assert len(fake.calls_to("unban")) == 1

    def test_comments_off_is_undone_by_comments_on(
        self, euler_env: FakeEuler, tmp_path: Path
    ) -> None:
        fake = euler_env
        state = tmp_path / "state"
        grant(fake, state)
        room = fake.streamer("host_handle")
        room.comments_enabled = False
        (off_id,) = seed(
            state,
            [
                entry(
                    "comments",
                    rule="copy-paste-raid",
                    room_id=room.room_id,
                    params={"enabled": False, "for_s": 120},
                )
            ],
        )
        code, out = run_cli("undo", str(off_id), "--state-dir", str(state))
        assert code == 0, out
        assert room.comments_enabled
        assert fake.calls_to("toggle_comments")[0].params["enabled"] == "true"

    def test_what_cannot_be_undone_says_why(self, euler_env: FakeEuler, tmp_path: Path) -> None:
        state = tmp_path / "state"
        grant(euler_env, state)
        reply, observed = seed(
            state,
            [
                entry("reply", params={"text": "hi"}),
                entry("ban", status="observed", mode="observe"),
            ],
        )
        code, out = run_cli("undo", str(reply), str(observed), "999", "--state-dir", str(state))
        assert code == 1
        assert "a sent message cannot be taken back" in out
        assert "was not carried out (status observed)" in out
        assert "#999 is not in the audit log" in out

    def test_undo_by_rule_and_time(self, euler_env: FakeEuler, tmp_path: Path) -> None:
        fake = euler_env
        state = tmp_path / "state"
        grant(fake, state)
        room = fake.streamer("host_handle")
        seed(
            state,
            [
                entry(
                    "mute",
                    rule="flood",
                    room_id=room.room_id,
                    user_id="1",
                    params={"duration_s": 60},
                ),
                entry(
                    "mute",
                    rule="flood",
                    room_id=room.room_id,
                    user_id="2",
                    params={"duration_s": 60},
                ),
                entry("ban", rule="slurs", room_id=room.room_id, user_id="3"),
                entry("reply", rule="flood", room_id=room.room_id, params={"text": "x"}),
            ],
        )
        code, out = run_cli("undo", "--rule", "flood", "--since", "10m", "--state-dir", str(state))
        assert code == 0, out
        assert len(out.splitlines()) == 2
        assert len(fake.calls_to("unmute", ok_only=True)) == 2
        assert fake.calls_to("unban") == []
        assert run_cli("undo", "--rule", "flood", "--state-dir", str(state))[0] == 2
        assert run_cli("undo", "--state-dir", str(state))[0] == 2

    def test_a_failed_undo_can_be_tried_again(self, euler_env: FakeEuler, tmp_path: Path) -> None:
        from modbot.fake.server import Fault

        fake = euler_env
        state = tmp_path / "state"
        grant(fake, state)
        room = fake.streamer("host_handle")
        (ban_id,) = seed(state, [entry("ban", room_id=room.room_id)])
        fake.inject("unban", Fault(status=400, body={"code": 400, "message": "nope"}))
        code, out = run_cli("undo", str(ban_id), "--state-dir", str(state))
        assert code == 1
        assert "the reversal failed" in out
        code, out = run_cli("undo", str(ban_id), "--state-dir", str(state))
        assert code == 0, out


def test_record_writes_the_replay_format(euler_env: FakeEuler, tmp_path: Path) -> None:
    fake = euler_env
    state = tmp_path / "state"
    grant(fake, state)
    output = tmp_path / "stream.jsonl"
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            main(
                ["record", "host_handle", "-o", str(output), "--state-dir", str(state)],
                stdout=io.StringIO(),
            )
        )
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not fake.connections("host_handle") and time.monotonic() < deadline:
        time.sleep(0.02)
    portal = fake.portal  # type: ignore[attr-defined]
    room = fake.streamer("host_handle")
    fan = m.Viewer("fan", "6822222222222222222", follower=True)
    portal.call(fake.emit, "host_handle", [m.chat(room.room_id, fan, "hello", fake.now_ms())])
    portal.call(fake.go_offline, "host_handle")
    thread.join(10)
    assert result == [0]
    lines = [json.loads(x) for x in output.read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["comment", "stream_end"]
    assert lines[0]["user"]["user_id"] == "6822222222222222222"
    code, _ = run_cli("replay", str(output), "--rules", str(Path(__file__).parent.parent / "rules"))
    assert code == 0
