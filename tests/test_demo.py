"""`modbot demo`: the real daemon against the fake server, decisions shown, audit kept."""

from __future__ import annotations

import io
import json
import re
import stat
from pathlib import Path

import pytest

from modbot.cli import main
from tests.conftest import DemoRun

REPO = Path(__file__).parent.parent


# No MODBOT_ settings from the machine; the working directory is empty.
pytestmark = pytest.mark.usefixtures("isolated")


def test_the_demo_moderates_the_scripted_stream(demo_run: DemoRun, tmp_path: Path) -> None:
    """`modbot demo --speed 6 -q` (played once for the session: see conftest.demo_run)."""
    text = demo_run.text
    assert demo_run.code == 0, text
    assert "@grumpy" in text
    assert f"Audit log: {demo_run.state / 'audit.db'}" in text
    assert stat.S_IMODE((demo_run.state / "demo.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((demo_run.state / "demo_world.json").stat().st_mode) == 0o600
    state = demo_run.copy_to(tmp_path / "demo")  # the commands below change it
    audit = io.StringIO()
    assert (
        main(
            ["audit", "--state-dir", str(state), "--format", "json", "--limit", "1000"],
            stdout=audit,
        )
        == 0
    )
    rows = [json.loads(line) for line in audit.getvalue().splitlines()]
    done = {(r["action"]) for r in rows if r["status"] == "done"}
    assert {"mute", "ban", "reply", "comments"} <= done
    # The moderator's insult and the ordinary chat were never actioned.
    assert not any(r["unique_id"] in ("mod_max", "ana", "ben", "chloe") for r in rows)
    # Scene 1, the nuke: every raider muted by the demo's `modbot nuke`, as one incident.
    nuked = [r for r in rows if r["rule"] == "nuke" and r["action"] == "mute"]
    assert {r["unique_id"] for r in nuked} == {f"raider_{i}" for i in range(1, 13)}
    assert {r["status"] for r in nuked} == {"done"}
    assert len({r["incident"] for r in nuked}) == 1
    assert nuked[0]["incident"] is not None
    # Scene 2, the ban carried into the next live: the troll banned in live 1 joins
    # live 2 (another room) and is banned there, linked to the first ban.
    first_ban = next(r for r in rows if r["unique_id"] == "troll" and r["rule"] == "slurs")
    carried = next(r for r in rows if r["unique_id"] == "troll" and r["rule"] == "remembered")
    assert first_ban["status"] == carried["status"] == "done"
    assert carried["params"]["remembered"] == first_ban["id"]
    assert carried["room_id"] != first_ban["room_id"]
    # Scene 3, the human first: the moderator's later mute of raider_3 is recorded, and
    # the nuke's unmute timer leaves it (the others are lifted).
    human = next(r for r in rows if r["rule"] == "moderator" and r["unique_id"] == "raider_3")
    assert human["action"] == "mute"
    assert human["params"]["operator"] == "mod_max"
    unmutes = {r["unique_id"]: r for r in rows if r["rule"] == "nuke" and r["action"] == "unmute"}
    assert unmutes["raider_3"]["status"] == "skipped"
    assert "a moderator (@mod_max) muted the viewer" in unmutes["raider_3"]["detail"]
    assert unmutes["raider_4"]["status"] == "done"
    assert "modbot nuke 'free gifts'" in text
    # The progress line (not a terminal here: plain lines) ends with the totals.
    assert re.search(
        r"s\] stream (live|offline): \d+ events read, \d+ decisions, \d+ actions done", text
    )

    # Undo works at once, against the demo's fake server brought back for the command.
    assert stat.S_IMODE((state / "demo.json").stat().st_mode) == 0o600
    ban = next(r for r in rows if r["action"] == "ban" and r["status"] == "done")
    undone = io.StringIO()
    code = main(["undo", "--state-dir", str(state), str(ban["id"]), "-q"], stdout=undone)
    assert code == 0, undone.getvalue()
    assert "demo's fake Euler server" in undone.getvalue()
    assert re.search(rf"#{ban['id']}: undone by #\d+ \(unban(ned)?\)", undone.getvalue())
    again = io.StringIO()
    assert main(["undo", "--state-dir", str(state), str(ban["id"]), "-q"], stdout=again) == 1
    assert "already undone" in again.getvalue()
    # The demo's fake world is kept between commands: a second keyword sync finds the
    # words the first one added (it changes nothing and says nothing was taken out).
    first = io.StringIO()
    sync = ["keywords", "sync", "--state-dir", str(state), "--list", "scam", "-q"]
    sync += ["--rules", str(REPO / "rules")]
    assert main(sync, stdout=first) == 0, first.getvalue()
    assert re.search(r"Changed [1-9]\d* word\(s\)", first.getvalue()), first.getvalue()
    second = io.StringIO()
    assert main(sync, stdout=second) == 0, second.getvalue()
    assert "Changed 0 word(s)" in second.getvalue(), second.getvalue()
    assert "taken out by someone else" not in second.getvalue()
    assert stat.S_IMODE((state / "demo_world.json").stat().st_mode) == 0o600


def test_the_demo_needs_a_rules_directory(tmp_path: Path) -> None:
    assert main(["demo", "--rules", str(tmp_path / "missing")]) == 2


def test_a_broken_demo_world_starts_empty_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hostile demo_world.json: the fake starts with empty lists, said once; the next
    command finds a good file again."""
    import anyio

    from modbot.demo import WORLD, revived
    from modbot.euler.oauth import TokenStore
    from modbot.euler.tokens import token_set_from_answer
    from modbot.fake.server import FakeEuler

    state = tmp_path / "demo"
    state.mkdir()
    fake = FakeEuler(api_key="demo-k", client_id="demo-client", client_secret="demo-s")
    streamer = fake.add_streamer("host_handle", live=True)
    marker = {
        "api_key": "demo-k",
        "client_id": "demo-client",
        "client_secret": "demo-s",
        "streamer": "host_handle",
        "room_id": streamer.room_id,
        "past_rooms": [],
        "owner_user_id": streamer.user_id,
        "live": True,
    }
    (state / "demo.json").write_text(json.dumps(marker))
    from modbot.euler.scopes import KNOWN_SCOPES

    TokenStore(state).save(
        token_set_from_answer(fake.issue_tokens(KNOWN_SCOPES, account="host_handle"), 0.0)
    )
    for hostile in (
        "{not json",
        '{"bans": "everyone", "mutes": {"1": "soon"}}',
        '{"mutes": {"1": 1e999}}',
        "[" * 100_000,
    ):
        (state / WORLD).write_text(hostile)

        async def look() -> None:
            async with revived(state):
                pass

        anyio.run(look)
        err = capsys.readouterr().err
        assert err.count("warning") == 1, err
        assert "starts with empty lists" in err
        # Written back whole at exit: the next revival reads it without a warning.
        anyio.run(look)
        assert capsys.readouterr().err == ""
        assert json.loads((state / WORLD).read_text())["bans"] == []


@pytest.mark.parametrize(
    ("step", "said"),
    [
        ({"moderator": {"user": "mod", "action": "explode", "target": "v"}}, "not 'explode'"),
        ({"moderator": {"user": "mod", "action": "mute", "target": "ghost"}}, "'ghost'"),
        (
            {"moderator": {"user": "mod", "action": "mute", "target": "v", "for": -1}},
            "moderator.for: Input should be greater than 0",
        ),
        ({"nuke": {"pattern": "x", "since": 0}}, "nuke.since: Input should be greater than 0"),
    ],
)
def test_a_bad_console_step_is_refused_when_loaded(step: dict[str, object], said: str) -> None:
    """The scenario's moderator and nuke steps are checked before anything is played."""
    from modbot.errors import ConfigError
    from modbot.fake.scenario import load_scenario

    source = {
        "streamer": {"unique_id": "host"},
        "users": {"mod": {"moderator": True}, "v": {}},
        "timeline": [{"at": 0, "live": True}, {"at": 1, **step}],
    }
    with pytest.raises((ConfigError, ValueError), match=said):
        load_scenario(source)
