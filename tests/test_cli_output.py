"""Issue 20 items 5-7: the replay format for users, output alike everywhere, messages that
say what to do."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from modbot.cli import main, unknown_keys
from modbot.events import EVENT_KINDS, parse_event
from modbot.rules.schema import RULE_EVENTS
from tests.test_cli import _entry, _grant, _seed

pytestmark = pytest.mark.usefixtures("isolated")

DOC = Path(__file__).parent.parent / "docs" / "replay.md"

RULES = (
    "version: 1\nrules:\n"
    "  - id: spam\n    on: comment\n    when: {text.words: spam}\n    then: [mute 5m]\n"
    "  - id: big-gift\n    on: gift\n    when: {gift.diamonds: '>= 5'}\n"
    "    then: [{reply: thanks}]\n"
)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "r.yaml").write_text(RULES)
    return folder


def _doc_lines() -> list[str]:
    block = re.search(r"```jsonl\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert block is not None
    return block.group(1).splitlines()


# --- item 5: the replay format -----------------------------------------------------------


def test_the_docs_show_a_valid_line_of_every_kind_with_known_keys_only():
    lines = _doc_lines()
    events = [parse_event(json.loads(line)) for line in lines]
    assert sorted(e.kind for e in events) == sorted(EVENT_KINDS)
    assert [unknown_keys(json.loads(line)) for line in lines] == [[] for _ in lines]


def test_the_docs_example_replays(tmp_path, rules, capsys):
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(_doc_lines()) + "\n")
    assert main(["replay", str(events), "--rules", str(rules)]) == 0
    err = capsys.readouterr().err
    assert f"{len(EVENT_KINDS)} events replayed, 0 bad lines skipped" in err
    assert "warning" not in err


def test_a_file_of_only_bad_lines_exits_1(tmp_path, rules, capsys):
    events = tmp_path / "events.jsonl"
    events.write_text('{"kind": "comment"}\nnot json\n{"kind": "nope", "ts": 1}\n')
    assert main(["replay", str(events), "--rules", str(rules)]) == 1
    err = capsys.readouterr().err
    assert "0 events replayed, 3 bad lines skipped" in err
    assert "docs/replay.md" in err


def test_replay_reports_an_unknown_user_key_once(tmp_path, rules, capsys):
    line = json.loads(_doc_lines()[0])
    line["user"]["isfollower"] = True
    events = tmp_path / "events.jsonl"
    events.write_text((json.dumps(line) + "\n") * 3)
    assert main(["replay", str(events), "--rules", str(rules)]) == 0
    err = capsys.readouterr().err
    warnings = [w for w in err.splitlines() if "warning" in w]
    assert warnings == [
        f"{events}:1: warning: unknown key user.isfollower (did you mean 'is_follower'?) (ignored)"
    ]
    assert "3 events replayed, 0 bad lines skipped, 3 unknown keys ignored" in err


def test_rules_test_refuses_an_unknown_user_key(rules, capsys):
    argv = ["rules", "test", str(rules), "--text", "hi", "--user-json", '{"isfollower": true}']
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == "modbot: unknown key user.isfollower (did you mean 'is_follower'?)"


@pytest.mark.parametrize("kind", RULE_EVENTS)
def test_rules_test_takes_every_kind_a_rule_can_be_on(kind, rules, capsys):
    argv = ["rules", "test", str(rules), "--kind", kind, "--text", "hello"]
    assert main(argv) == 0, capsys.readouterr().err


def test_rules_test_tries_a_gift_rule(rules):
    out = io.StringIO()
    gift = '{"gift": {"name": "Lion", "diamonds": 29999, "count": 1}}'
    argv = ["rules", "test", str(rules), "--kind", "gift", "--event-json", gift, "--json"]
    assert main(argv, stdout=out) == 0
    (decision,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert decision["rule"] == "big-gift"
    assert decision["action"] == "reply"


# --- item 6: all at once, the same everywhere -------------------------------------------


def test_run_names_every_missing_setting_at_once(tmp_path, capsys):
    assert main(["run", "--state-dir", str(tmp_path / "state")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    for name in ("streamers", "api_key", "client_id", "client_secret", "modbot auth login"):
        assert name in err, name
    assert not (tmp_path / "state").exists()


def test_a_failed_record_leaves_no_state_behind(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MODBOT_API_KEY", "record-api-key-0001")
    assert main(["record", "someone", "-o", "out.jsonl"]) == 2
    err = capsys.readouterr().err
    assert "client_id" in err
    assert "client_secret" in err
    assert not (tmp_path / "var").exists()
    assert not (tmp_path / "out.jsonl").exists()


def test_audit_json_is_format_json_and_csv_has_every_json_column(tmp_path):
    _seed(tmp_path, [_entry("mute", params={"duration_s": 600}, reason="appeal")])
    outputs = {}
    for flag in (["--json"], ["--format", "json"], ["--format", "csv"]):
        out = io.StringIO()
        assert main(["audit", "--state-dir", str(tmp_path), *flag], stdout=out) == 0
        outputs[" ".join(flag)] = out.getvalue()
    assert outputs["--json"] == outputs["--format json"]
    record = json.loads(outputs["--json"])
    (row,) = csv.DictReader(io.StringIO(outputs["--format csv"]))
    assert list(row) == list(record)
    assert row["reason"] == "appeal"
    assert row["rule_hash"] == (record["rule_hash"] or "")
    assert row["updated"] == (record["updated"] or "")


@pytest.mark.parametrize("streamer", ["host_handle", "@host_handle", "@HOST_handle"])
def test_audit_streamer_takes_the_at(tmp_path, streamer):
    _seed(tmp_path, [_entry("mute"), _entry("ban", streamer="other")])
    out = io.StringIO()
    argv = ["audit", "--state-dir", str(tmp_path), "--streamer", streamer, "--json"]
    assert main(argv, stdout=out) == 0
    assert [json.loads(line)["streamer"] for line in out.getvalue().splitlines()] == ["host_handle"]


def test_rules_check_json_is_one_object_per_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: a\n    on: comment\n    when: {text.wrods: x}\n")
    out = io.StringIO()
    assert main(["rules", "check", str(bad), "--json"], stdout=out) == 1
    problems = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(problems) >= 3
    assert all(set(p) == {"file", "line", "col", "severity", "message"} for p in problems)
    assert any("text.wrods" in p["message"] for p in problems)


def test_undo_json_says_what_became_of_each_id(euler_env, tmp_path):
    state = tmp_path / "state"
    _grant(euler_env, state)
    room = euler_env.streamer("host_handle")
    (mute_id,) = _seed(state, [_entry("mute", room_id=room.room_id)])
    out = io.StringIO()
    argv = ["undo", str(mute_id), "999", "--state-dir", str(state), "--json"]
    assert main(argv, stdout=out) == 1
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["id"] == mute_id
    assert first["undone"] is True
    assert first["reversal"] == "unmute"
    assert second == {"id": 999, "undone": False, "refused": "#999 is not in the audit log"}


# --- item 7: messages that say what to do ------------------------------------------------


def _check(tmp_path: Path, text: str) -> str:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    out = io.StringIO()
    main(["rules", "check", str(path)], stdout=out)
    return out.getvalue()


def test_a_tab_says_indent_with_spaces(tmp_path):
    text = "version: 1\nrules:\n  - id: a\n\ton: comment\n"
    assert "indent with spaces" in _check(tmp_path, text)


def test_a_missing_version_says_add_it(tmp_path):
    text = "rules:\n  - id: a\n    on: comment\n    when: {text.words: x}\n    then: [log]\n"
    assert "add `version: 1`" in _check(tmp_path, text)


def test_rules_are_numbered_from_1(tmp_path):
    text = "version: 1\nrules:\n  - on: comment\n    when: {text.words: x}\n"
    assert "rule '#1' has no then" in _check(tmp_path, text)


def test_undo_user_alone_says_what_else_it_needs(capsys):
    assert main(["undo", "--user", "@flooder"]) == 2
    err = capsys.readouterr().err
    assert "--user only narrows an undo by rule: also give --rule R and --since TIME" in err
    assert "--user @viewer" in err


def test_rules_check_of_a_folder_without_rule_files_warns(tmp_path, capsys):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a rule file")
    out = io.StringIO()
    assert main(["rules", "check", str(folder)], stdout=out) == 1
    assert "warning: no rule files (*.yaml or *.yml) here: nothing was checked" in out.getvalue()
    assert "OK" not in out.getvalue()


def test_an_undo_of_comments_reads_comments_back_on(euler_env, tmp_path):
    import time

    from modbot.euler.oauth import TokenStore
    from modbot.euler.tokens import token_set_from_answer

    state = tmp_path / "state"
    answer = euler_env.issue_tokens(["webcast:comments", "webcast:bulk_live_check"])
    TokenStore(state).save(token_set_from_answer(answer, time.time()))
    room = euler_env.streamer("host_handle")
    (paused,) = _seed(
        state,
        [
            _entry(
                "comments",
                room_id=room.room_id,
                user_id="",
                unique_id="",
                params={"enabled": False},
            )
        ],
    )
    out = io.StringIO()
    code = main(["undo", str(paused), "--state-dir", str(state)], stdout=out)
    assert re.fullmatch(rf"#{paused}: undone by #\d+ \(comments back on\)\n", out.getvalue()), (
        code,
        out.getvalue(),
    )
