"""The console's lists, moderators and keyword filter, end to end: the CLI against the fake
Euler server on loopback (real HTTP) and a real audit database file."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from modbot.audit.query import AuditFilter
from modbot.audit.records import Entry
from modbot.audit.store import AuditStore, NewEntry, default_db
from modbot.cli import main
from modbot.euler.client import MAX_LIST_PAGES
from modbot.euler.oauth import TokenStore
from modbot.euler.tokens import token_set_from_answer
from modbot.fake.faults import Fault
from modbot.fake.server import FakeEuler

pytestmark = pytest.mark.usefixtures("isolated")

SCOPES = [
    "webcast:mute",
    "webcast:ban",
    "webcast:moderators",
    "webcast:sensitive_words",
    "user:info",
]
VIEWER = "6811111111111111111"


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdout=out)
    return code, out.getvalue()


def grant(fake: FakeEuler, state: Path, scopes: list[str] = SCOPES) -> None:
    answer = fake.issue_tokens(scopes)
    TokenStore(state).save(token_set_from_answer(answer, time.time()))


def seed(state: Path, entries: list[NewEntry]) -> list[int]:
    async def write() -> list[int]:
        async with AuditStore.open(default_db(state)) as store:
            ids = await store.add(entries, datetime.now(UTC))
        return [i for i in ids if i is not None]

    return anyio.run(write)


def entry(action: str, room_id: str, user_id: str, **fields: object) -> NewEntry:
    base: dict[str, object] = {
        "ts": datetime.now(UTC),
        "streamer": "host_handle",
        "rule": "slurs",
        "action": action,
        "mode": "enforce",
        "status": "done",
        "room_id": room_id,
        "user_id": user_id,
        "unique_id": "troll",
        "msg_id": f"m{user_id}{action}",
    }
    base.update(fields)
    return NewEntry(**base)  # type: ignore[arg-type]


def audit_rows(state: Path) -> list[Entry]:
    async def read() -> list[Entry]:
        async with AuditStore.open(default_db(state)) as store:
            return await store.query(AuditFilter(limit=None))

    return anyio.run(read)


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def state(euler_env: FakeEuler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODBOT_STREAMERS", "host_handle")
    directory = tmp_path / "state"
    grant(euler_env, directory)
    return directory


class TestMutesAndBans:
    def test_every_page_with_modbots_record_beside(self, euler_env: FakeEuler, state: Path) -> None:
        fake = euler_env
        room = fake.streamer("host_handle")
        fake.world.list_page_size = 2
        users = [str(6811111111111111111 + i) for i in range(5)]
        for uid in users:
            room.mutes[uid] = None
        (rec,) = seed(state, [entry("mute", room.room_id, users[3])])
        # a failed mute and one in another room are not the record
        seed(
            state,
            [
                entry("mute", room.room_id, users[1], msg_id="x1", status="failed"),
                entry("mute", "7300000000000000009", users[2], msg_id="x2"),
            ],
        )
        code, out = run_cli("mutes", "--state-dir", str(state), "--json")
        assert code == 0, out
        rows = lines(out)
        assert sorted(str(r["user_id"]) for r in rows) == sorted(users)
        assert len(fake.calls_to("list_mutes", ok_only=True)) == 3  # 2 + 2 + 1
        by_user = {r["user_id"]: r for r in rows}
        assert by_user[users[3]]["modbot"] == {
            "id": rec,
            "rule": "slurs",
            "ts": by_user[users[3]]["modbot"]["ts"],  # type: ignore[index]
            "action": "mute",
        }
        assert by_user[users[1]]["modbot"] is None
        assert by_user[users[2]]["modbot"] is None
        assert set(rows[0]) == {"streamer", "room_id", "user_id", "unique_id", "nickname", "modbot"}
        code, table = run_cli("mutes", "--state-dir", str(state))
        assert code == 0
        assert table.splitlines()[0].split()[:3] == ["USER", "ID", "HANDLE"]
        (line,) = [x for x in table.splitlines() if users[3] in x]
        assert f"#{rec}" in line
        assert "slurs" in line

    def test_an_api_saying_has_more_forever_is_cut_and_said(
        self, euler_env: FakeEuler, state: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        fake = euler_env
        room = fake.streamer("host_handle")
        fake.world.endless_pages = True
        room.bans.update({VIEWER, "6811111111111111112"})
        code, out = run_cli("bans", "--state-dir", str(state), "--json")
        assert code == 1
        assert len(lines(out)) == 2
        assert "kept saying there is more" in capsys.readouterr().err
        # page 1 repeats nobody new: the reading stops there
        assert len(fake.calls_to("list_bans")) == 2

    def test_new_users_on_every_page_stop_at_the_cap(
        self, euler_env: FakeEuler, state: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        fake = euler_env
        room = fake.streamer("host_handle")
        fake.world.list_page_size = 1
        room.bans.update(str(6811111111111111111 + i) for i in range(MAX_LIST_PAGES + 20))
        code, out = run_cli("bans", "--state-dir", str(state), "--json")
        assert code == 1
        assert len(lines(out)) == MAX_LIST_PAGES
        assert len(fake.calls_to("list_bans")) == MAX_LIST_PAGES
        assert f"after {MAX_LIST_PAGES} pages" in capsys.readouterr().err

    def test_a_hostile_nickname_is_shown_inert(self, euler_env: FakeEuler, state: Path) -> None:
        fake = euler_env
        room = fake.streamer("host_handle")
        room.bans.add(VIEWER)
        fake.world.names[VIEWER] = ("evil\x1b[2J", "\u202eadmin\n#1 modbot\x07")
        code, out = run_cli("bans", "--state-dir", str(state))
        assert code == 0
        assert "\x1b" not in out
        assert "\u202e" not in out
        assert "\x07" not in out
        assert len(out.splitlines()) == 2  # the header and one row: no line of the viewer's
        code, out = run_cli("bans", "--state-dir", str(state), "--json")
        (row,) = lines(out)
        assert "\n" not in str(row["nickname"])  # the client cleans control characters
        assert "\x1b" not in out
        assert "\u202e" not in out

    def test_exit_codes(
        self,
        euler_env: FakeEuler,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("MODBOT_STREAMERS", "host_handle,second")
        euler_env.add_streamer("second", live=True)
        state = tmp_path / "s2"
        grant(euler_env, state, ["webcast:ban"])
        assert run_cli("mutes", "--state-dir", str(state))[0] == 2  # which streamer?
        assert run_cli("mutes", "--state-dir", str(state), "--streamer", "second")[0] == 1  # scope
        assert run_cli("bans", "--state-dir", str(state), "--streamer", "second")[0] == 0
        assert not euler_env.calls_to("list_mutes")
        # a streamer who is not configured is refused, as for every command by hand
        euler_env.add_streamer("elsewhere", live=True)
        calls = len(euler_env.calls)
        for hostile in ("elsewhere", "\u202esecond", "@" + "x" * 10_000):
            code, _ = run_cli("bans", "--state-dir", str(state), "--streamer", hostile)
            assert code == 2
            err = capsys.readouterr().err
            assert "--streamer" in err
            assert "\u202e" not in err
            assert len(err) < 300
        assert len(euler_env.calls) == calls


class TestModerators:
    def test_add_list_and_undo(self, euler_env: FakeEuler, state: Path) -> None:
        fake = euler_env
        anchor = fake.streamer("host_handle")
        fake.world.names[VIEWER] = ("helper_one", "Helper")
        code, out = run_cli(
            "moderators", "add", "@helper_one", "--state-dir", str(state), "--reason", "trusted"
        )
        assert code == 0, out
        assert VIEWER in anchor.moderators
        assert out.startswith("#")
        assert ": done" in out
        added = int(out.split()[0][1:])
        (row,) = audit_rows(state)
        assert (row.action, row.rule, row.user_id, row.status, row.reason) == (
            "moderator_add",
            "manual",
            VIEWER,
            "done",
            "trusted",
        )
        code, out = run_cli("moderators", "list", "--state-dir", str(state), "--json")
        assert code == 0
        assert [r["user_id"] for r in lines(out)] == [VIEWER]
        code, out = run_cli("undo", str(added), "--state-dir", str(state))
        assert code == 0, out
        assert VIEWER not in anchor.moderators
        assert len(fake.calls_to("remove_moderator", ok_only=True)) == 1
        # the undo cannot be undone; a second undo is refused
        assert run_cli("undo", str(added), "--state-dir", str(state))[0] == 1

    def test_an_all_digit_handle_is_asked_of_the_api_not_matched_to_an_id(
        self, euler_env: FakeEuler, state: Path
    ) -> None:
        """@12345 is a handle: a row of the viewer whose numeric id is 12345 does not name
        it, nor does an old cache entry; the API says who it is now."""
        fake = euler_env
        seed(state, [entry("log", "7300000000000000001", "12345", unique_id="someone")])
        fake.world.names[VIEWER] = ("12345", "Digits")
        code, out = run_cli("moderators", "add", "@12345", "--state-dir", str(state))
        assert code == 0, out
        assert fake.streamer("host_handle").moderators == {VIEWER}
        assert audit_rows(state)[0].user_id == VIEWER  # newest first

    def test_everywhere_adds_in_every_configured_streamer(
        self, euler_env: FakeEuler, state: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MODBOT_STREAMERS", "host_handle,second")
        second = euler_env.add_streamer("second", live=True)
        code, out = run_cli(
            "moderators", "add", VIEWER, "--everywhere", "--state-dir", str(state), "--json"
        )
        assert code == 0, out
        assert [r["streamer"] for r in lines(out)] == ["host_handle", "second"]
        assert VIEWER in euler_env.streamer("host_handle").moderators
        assert VIEWER in second.moderators

    def test_usage_and_refusals(
        self, euler_env: FakeEuler, state: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run_cli("moderators", "add", "--state-dir", str(state))[0] == 2
        assert run_cli("moderators", "list", VIEWER, "--state-dir", str(state))[0] == 2
        assert run_cli("moderators", "add", "@not a handle", "--state-dir", str(state))[0] == 2
        reason = ["--reason", "x" * 501]
        assert run_cli("moderators", "add", VIEWER, "--state-dir", str(state), *reason)[0] == 2
        assert not euler_env.calls_to("add_moderator")
        assert run_cli("moderators", "add", "@nobody_known", "--state-dir", str(state))[0] == 1
        assert "TikTok has no account @nobody_known" in capsys.readouterr().err
        euler_env.inject("add_moderator", Fault(status=400, times=5))
        code, out = run_cli("moderators", "add", VIEWER, "--state-dir", str(state))
        assert code == 1
        assert ": failed (" in out


RULES = """\
version: 1
lists:
  scam: {file: scam.txt}
rules:
  - id: scam
    on: comment
    when: {text.words: "@scam"}
    then: [log]
"""


def rules_dir(tmp_path: Path, terms: list[str]) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir(exist_ok=True)
    (directory / "r.yaml").write_text(RULES, encoding="utf-8")
    (directory / "scam.txt").write_text("\n".join(terms) + "\n", encoding="utf-8")
    return directory


class TestKeywords:
    def sync(self, state: Path, rules: Path, *more: str) -> tuple[int, str]:
        return run_cli(
            "keywords",
            "sync",
            "--list",
            "scam",
            "--rules",
            str(rules),
            "--state-dir",
            str(state),
            *more,
        )

    def test_sync_adds_then_changes_nothing_and_leaves_the_streamers_words(
        self, euler_env: FakeEuler, state: Path, tmp_path: Path
    ) -> None:
        fake = euler_env
        room = fake.streamer("host_handle")
        room.sensitive_words["7000000000000000001"] = "spoiler"
        room.sensitive_words["7000000000000000002"] = "free coins"  # the streamer's own
        rules = rules_dir(tmp_path, ["free coins", "dm me", "promo code", "f*ck"])
        code, out = self.sync(state, rules, "--json")
        assert code == 0, out
        assert [(r["op"], r["word"], r["status"]) for r in lines(out)] == [
            ("add", "dm me", "done"),
            ("add", "promo code", "done"),
        ]
        assert sorted(room.sensitive_words.values()) == [
            "dm me",
            "free coins",
            "promo code",
            "spoiler",
        ]
        # a second run changes nothing
        before = len(fake.calls_to("add_sensitive_word", "remove_sensitive_word"))
        code, out = self.sync(state, rules)
        assert code == 0
        assert "Changed 0 word(s)" in out
        assert len(fake.calls_to("add_sensitive_word", "remove_sensitive_word")) == before
        # "free coins" leaves the list: it is the streamer's, so it stays; "dm me" is ours
        rules = rules_dir(tmp_path, ["promo code"])
        code, out = self.sync(state, rules, "--dry-run", "--json")
        assert code == 0
        assert [(r["op"], r["word"], r["status"]) for r in lines(out)] == [
            ("remove", "dm me", "planned")
        ]
        assert "dm me" in room.sensitive_words.values()  # dry run: nothing changed
        code, out = self.sync(state, rules, "--json")
        assert code == 0, out
        (removal,) = lines(out)
        assert sorted(room.sensitive_words.values()) == ["free coins", "promo code", "spoiler"]
        # the removal is undone by adding the word back; then the list is synced again
        code, out = run_cli("undo", str(removal["id"]), "--state-dir", str(state))
        assert code == 0, out
        assert "dm me" in room.sensitive_words.values()
        assert self.sync(state, rules)[0] == 0
        assert sorted(room.sensitive_words.values()) == ["free coins", "promo code", "spoiler"]
        code, out = run_cli("keywords", "list", "--state-dir", str(state), "--json")
        assert {r["word"]: bool(r["added_by_modbot"]) for r in lines(out)} == {
            "spoiler": False,
            "free coins": False,
            "promo code": True,
        }

    def test_undo_of_a_keyword_add(self, euler_env: FakeEuler, state: Path, tmp_path: Path) -> None:
        room = euler_env.streamer("host_handle")
        code, out = self.sync(state, rules_dir(tmp_path, ["dm me"]), "--json")
        (row,) = lines(out)
        assert room.sensitive_words
        assert code == 0
        code, out = run_cli("undo", str(row["id"]), "--state-dir", str(state))
        assert code == 0, out
        assert not room.sensitive_words
        # modbot took its word out itself: the next sync adds it again
        code, out = self.sync(state, rules_dir(tmp_path, ["dm me"]), "--json")
        assert [r["op"] for r in lines(out)] == ["add"]

    def test_a_word_someone_took_out_is_not_put_back(
        self, euler_env: FakeEuler, state: Path, tmp_path: Path
    ) -> None:
        room = euler_env.streamer("host_handle")
        rules = rules_dir(tmp_path, ["dm me"])
        assert self.sync(state, rules)[0] == 0
        room.sensitive_words.clear()  # the streamer removed it in the TikTok app
        code, out = self.sync(state, rules)
        assert code == 0
        assert "taken out by someone else" in out
        assert not room.sensitive_words

    def test_usage_and_refusals(
        self, euler_env: FakeEuler, state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rules = rules_dir(tmp_path, ["dm me"])
        assert run_cli("keywords", "sync", "--state-dir", str(state))[0] == 2
        assert run_cli("keywords", "list", "--list", "x", "--state-dir", str(state))[0] == 2
        code, _ = run_cli(
            "keywords", "sync", "--list", "nope", "--rules", str(rules), "--state-dir", str(state)
        )
        assert code == 1
        euler_env.add_streamer("second", live=True)
        code, _ = run_cli("keywords", "list", "--streamer", "second", "--state-dir", str(state))
        assert code == 2  # not a configured streamer
        monkeypatch.setenv("MODBOT_STREAMERS", "host_handle,second")
        code, _ = run_cli("keywords", "list", "--streamer", "second", "--state-dir", str(state))
        assert code == 1  # not the granting account
        monkeypatch.setenv("MODBOT_STREAMERS", "host_handle")
        (rules / "r.yaml").write_text("version: 1\nrules: [{id: BAD}]\n", encoding="utf-8")
        code, _ = self.sync(state, rules)
        assert code == 1
        assert not euler_env.calls_to("add_sensitive_word")


@pytest.mark.parametrize(
    "rows",
    [
        [{"word_id": "7000000000000000001"}],  # a word without text
        [{"word_id": "not a number", "word": "x"}],
        ["just a string"],
        {"no": "list"},
    ],
)
def test_a_broken_keyword_answer_is_one_sentence_and_changes_nothing(
    euler_env: FakeEuler,
    state: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rows: object,
) -> None:
    body = {"code": 200, "response": {"data": {"data": rows, "extra": {}, "status_code": 0}}}
    euler_env.inject("list_sensitive_words", Fault(status=200, body=body, times=5))
    rules = rules_dir(tmp_path, ["dm me"])
    code, _out = run_cli(
        "keywords", "sync", "--list", "scam", "--rules", str(rules), "--state-dir", str(state)
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert "word" in err  # what was wrong with the answer
    assert len(euler_env.calls_to("list_sensitive_words")) == 1  # answered, not retried
    assert not euler_env.calls_to("add_sensitive_word")
    assert not audit_rows(state)
