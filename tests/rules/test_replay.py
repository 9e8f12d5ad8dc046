"""`modbot replay` and `modbot rules test` against the example rules, exactly as cli.md says."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from modbot.cli import main
from modbot.events import format_ts

from .util import T0

REPO = Path(__file__).parent.parent.parent
RULES = str(REPO / "rules")


def record(at: float, who: int, text: str, kind: str = "comment", **user: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "ts": format_ts(T0 + timedelta(seconds=at)),
        "streamer": "host",
        "room_id": "7300000000000000001",
        "msg_id": f"73{int(at * 1000):010d}{who:04d}",
        "user": {"user_id": f"68000000000000{who:05d}", "unique_id": f"viewer_{who}", **user},
        "text": text,
    }


def stream() -> list[dict[str, Any]]:
    """A scripted stream through the example rules: one line per situation."""
    events = [
        record(0, 1, "hi everyone, love the stream"),
        record(1, 2, "what game is this?", kind="question"),
        record(2, 3, "free coins at bad-site dot com"),  # scam-links (not a follower)
        record(2.5, 3, "again: other-site.com"),  # scam-links in its 1m cooldown: nothing
        record(3, 4, "FREE COINS at bad-site dot com", is_follower=True),  # scam-phrases
        record(4, 5, "you are an idiot"),  # insults strike 1: warn
        record(5, 5, "still an 1d1ot"),  # strike 2: mute 10m
        record(6, 6, "THIS STREAM IS AMAZING!!!"),  # caps, observed only
        record(7, 7, "slurword", is_moderator=True),  # moderators are exempt
        record(8, 8, "s.l.u.r.w.o.r.d"),  # ban (and nothing less)
    ]
    # A flood: one viewer, six messages in five seconds.
    events += [record(10 + i, 9, f"message {i}") for i in range(6)]
    # A copy-paste raid: eight accounts, one text.
    events += [record(20 + i * 0.5, 100 + i, "RAID RAID follow @raider now") for i in range(8)]
    # A day later viewer_5's strikes have decayed: a warning again, not a longer mute.
    events.append(record(5 + 86_401, 5, "idiot"))
    return events


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def replay(path: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["replay", str(path), "--rules", RULES, *extra], stdout=out)
    return code, out.getvalue()


def test_replay_json_gives_exact_decisions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write(tmp_path / "e.jsonl", [json.dumps(e) for e in stream()])
    code, out = replay(events, "--json")
    assert code == 0
    decisions = [json.loads(line) for line in out.splitlines()]
    for d in decisions:
        assert {
            "msg_id",
            "ts",
            "user_id",
            "unique_id",
            "rule",
            "action",
            "mode",
            "detail",
        } <= d.keys()
    got = [
        (d["unique_id"], d["rule"], d["action"], d.get("duration_s"), d["mode"]) for d in decisions
    ]
    assert got == [
        ("viewer_3", "scam-links", "mute", 600.0, "enforce"),
        ("viewer_3", "scam-links", "reply", None, "enforce"),
        ("viewer_4", "scam-phrases", "mute", 300.0, "enforce"),
        ("viewer_5", "insults", "warn", None, "enforce"),
        ("viewer_5", "insults", "mute", 600.0, "enforce"),
        ("viewer_6", "caps", "reply", None, "observe"),
        ("viewer_8", "slurs", "ban", None, "enforce"),
        ("viewer_9", "flood", "mute", 120.0, "enforce"),
        ("viewer_107", "copy-paste-raid", "comments", None, "enforce"),
        ("viewer_107", "copy-paste-raid", "reply", None, "enforce"),
        ("viewer_5", "insults", "warn", None, "enforce"),
    ]
    # viewer_3's scam-phrases mute (5m) is superseded by the 10m one, so not printed.
    assert decisions[0]["detail"].startswith("text.links")
    assert decisions[1]["text"] == "@viewer_3 links and promos are not allowed here"
    assert decisions[3]["text"] == "@viewer_5 please keep the chat respectful"
    raid = decisions[8]
    assert (raid["enabled"], raid["for_s"]) == (False, 120.0)
    err = capsys.readouterr().err
    assert "scam-links" in err
    assert "25 events replayed, 0 bad lines skipped" in err
    summary = {line.split()[0]: line.split()[1:] for line in err.splitlines()[1:-1]}
    assert summary["scam-phrases"] == ["2", "1", "0"]  # fired twice, enforced once
    assert summary["caps"] == ["1", "0", "1"]
    assert summary["scam-links"] == ["2", "1", "0"]  # the second in its cooldown
    assert decisions[-1]["strike"] == 1
    assert summary["slurs"] == ["1", "1", "0"]


def test_replay_text_output_is_one_line_per_decision(tmp_path: Path) -> None:
    events = write(tmp_path / "e.jsonl", [json.dumps(e) for e in stream()[:3]])
    code, out = replay(events)
    assert code == 0
    assert out.splitlines() == [
        (
            "2026-11-24T20:00:02.000Z @viewer_3 scam-links: mute 10m - text.links: bad-site.com;"
            " user.is_follower is false"
        ),
        (
            "2026-11-24T20:00:02.000Z @viewer_3 scam-links: reply "
            "'@viewer_3 links and promos are not allowed here' - text.links: bad-site.com;"
            " user.is_follower is false"
        ),
    ]


def test_bad_lines_are_reported_with_their_number_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = stream()
    lines = [
        json.dumps(good[0]),
        "{not json",
        json.dumps({**good[1], "kind": "shout"}),
        json.dumps({**good[1], "ts": "yesterday"}),
        "",
        '["a list"]',
        json.dumps(good[9]),
    ]
    code, out = replay(write(tmp_path / "e.jsonl", lines), "--json")
    assert code == 0
    assert [json.loads(x)["rule"] for x in out.splitlines()] == ["slurs"]
    err = capsys.readouterr().err
    for number in (2, 3, 4, 6):
        assert f"e.jsonl:{number}: skipped: " in err
    assert "e.jsonl:5:" not in err  # blank lines are not errors
    assert "2 events replayed, 4 bad lines skipped" in err


def test_replay_uses_the_recorded_timestamps_as_the_clock(tmp_path: Path) -> None:
    # Six messages spread over a minute are no flood; the same six in 5 s are.
    slow = [record(i * 10, 9, f"m{i}") for i in range(6)]
    code, out = replay(write(tmp_path / "slow.jsonl", [json.dumps(e) for e in slow]), "--json")
    assert (code, out) == (0, "")


def test_replay_missing_file_and_broken_rules(tmp_path: Path) -> None:
    code, _ = replay(tmp_path / "missing.jsonl")
    assert code == 1
    bad_rules = tmp_path / "rules"
    bad_rules.mkdir()
    (bad_rules / "r.yaml").write_text("version: 1\nrules: 3\n")
    out = io.StringIO()
    events = write(tmp_path / "e.jsonl", [json.dumps(stream()[0])])
    assert main(["replay", str(events), "--rules", str(bad_rules)], stdout=out) == 1


def test_rules_test_explains_what_fires_and_what_would_be_done() -> None:
    out = io.StringIO()
    code = main(["rules", "test", RULES, "--text", "free coins at example dot com"], stdout=out)
    assert code == 0
    text = out.getvalue()
    assert "scam-links fires (enforce): text.links: example.com" in text
    assert "scam-phrases fires (enforce): text.words matched 'free coins'" in text
    assert "-> mute 5m  [not done: superseded by mute 10m from rule scam-links]" in text
    assert text.splitlines()[-1] == (
        "Would do: mute 10m, reply '@test_viewer links and promos are not allowed here'"
    )


def test_rules_test_with_user_json_and_nothing_firing() -> None:
    out = io.StringIO()
    user = json.dumps({"is_moderator": True, "unique_id": "mod"})
    code = main(["rules", "test", RULES, "--text", "slurword", "--user-json", user], stdout=out)
    assert (code, out.getvalue()) == (0, "No rule fires on 'slurword'.\n")
    assert main(["rules", "test", RULES, "--text", "x", "--user-json", "[1]"]) == 2
    assert main(["rules", "test", RULES, "--text", "x", "--user-json", "{"]) == 2
