"""The action table is the one home of the action vocabulary: an action added there alone
is checked in rule files, merged, described, called, audited, filtered and undone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modbot.actions import table
from modbot.actions.executor import Executor, Work
from modbot.actions.plan import Intent
from modbot.actions.table import ActionKind
from modbot.actions.undo import undo
from modbot.audit import view
from modbot.audit.query import AuditFilter, FilterError
from modbot.audit.store import AuditStore
from modbot.euler.client import EulerClient
from modbot.euler.scopes import ACTION_SCOPES, scopes_for_actions
from modbot.fake.clock import FakeClock
from modbot.fake.server import FakeEuler
from modbot.rules.compile import compile_texts
from modbot.rules.engine import Engine

from .util import event, execute

RULE = """\
version: 1
rules:
  - id: hider
    on: comment
    when: {text.words: [spoiler]}
    then: [hide, log]
"""


async def _hide(client: EulerClient, intent: Intent) -> None:
    """The made-up action's call: a real call on the fake server (a ban by another name)."""
    await client.ban(intent.room_id, intent.user_id, intent.msg_id or None)


async def _unhide(client: EulerClient, intent: Intent) -> None:
    await client.unban(intent.room_id, intent.user_id)


@pytest.fixture
def hide() -> Iterator[None]:
    """``hide`` and its inverse ``unhide``, added to the action table and nowhere else."""
    added = {
        "hide": ActionKind(
            "hide", route="hide", scope="webcast:ban", call=_hide, severity=1, inverse="unhide"
        ),
        "unhide": ActionKind(
            "unhide",
            in_rules=False,
            route="hide",
            scope="webcast:ban",
            call=_unhide,
            not_undoable="reversed an earlier action; it cannot be undone",
        ),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, kind in added.items():
            patch.setitem(table.ACTIONS, name, kind)
        yield


@pytest.mark.usefixtures("hide")
def test_a_new_action_is_checked_in_rule_files() -> None:
    """A rule may name the new action; a misspelling is an error that lists it; its
    scope is asked for and warned about like any other."""
    ruleset, problems = compile_texts({"r.yaml": RULE})
    assert ruleset is not None, problems
    assert problems == []
    _, problems = compile_texts({"r.yaml": RULE.replace("[hide, log]", "[hid]")})
    (error,) = problems
    assert error.severity == "error"
    assert "unknown action 'hid'" in error.message
    assert "hide" in error.message
    _, problems = compile_texts({"r.yaml": RULE.replace("[hide, log]", "[unhide]")})
    assert "unknown action 'unhide'" in problems[0].message  # undo's, not a rule's
    _, warned = compile_texts({"r.yaml": RULE}, granted_scopes=frozenset({"webcast:mute"}))
    assert any("hide needs the OAuth scope webcast:ban" in w.message for w in warned)
    assert ACTION_SCOPES["hide"] == "webcast:ban"
    assert "webcast:ban" in scopes_for_actions(["hide"])


@pytest.mark.usefixtures("hide")
def test_a_new_action_is_merged_by_its_severity() -> None:
    """The table's severity places the new action in the merge: a mute outweighs it."""
    ruleset, _ = compile_texts(
        {"r.yaml": RULE.replace("[hide, log]", "[hide, mute 10m]")}, granted_scopes=None
    )
    assert ruleset is not None
    engine = Engine(ruleset)
    clock = FakeClock()
    fake = FakeEuler(clock=clock)
    fake.add_streamer("host_handle", live=True)
    decisions = engine.evaluate(event(fake, clock, text="a spoiler here"), clock.now())
    held = {d.action: d.suppressed for d in decisions}
    assert held == {"hide": "superseded by mute 10m from rule hider", "mute": None}


@pytest.mark.usefixtures("hide")
async def test_a_new_action_is_called_audited_filtered_described_and_undone(
    client: EulerClient, store: AuditStore, fake: FakeEuler, clock: FakeClock
) -> None:
    """From a rule to the API and the audit log, then undone by its inverse, with no
    code but the table's row knowing the action."""
    ruleset, _ = compile_texts({"r.yaml": RULE})
    assert ruleset is not None
    e = event(fake, clock, text="a spoiler here")
    decisions = Engine(ruleset).evaluate(e, clock.now())
    assert [d.describe() for d in decisions] == ["hide", "log"]
    executor = Executor(client, store, clock, granted_scopes=frozenset({"webcast:ban"}))
    await execute(executor, Work(e, decisions))
    assert len(fake.calls_to("ban", ok_only=True)) == 1

    (row,) = await store.query(AuditFilter(action="hide"))
    assert (row.action, row.status, row.rule) == ("hide", "done", "hider")
    assert view.what(row) == "hide"
    assert "hide" in view.table([row])
    with pytest.raises(FilterError, match="hide"):
        AuditFilter(action="hid")

    result = await undo(executor, store, row.id, reason="a false positive")
    assert result.ok, result
    assert result.entry is not None
    assert (result.entry.action, result.entry.undo_of) == ("unhide", row.id)
    assert len(fake.calls_to("unban", ok_only=True)) == 1
    (back,) = await store.query(AuditFilter(action="unhide"))
    assert back.id == result.entry.id
    again = await undo(executor, store, back.id)
    assert again.refused is not None
    assert "it cannot be undone" in again.refused


def test_the_shipped_vocabulary_is_the_tables() -> None:
    """Every reader's list of actions is the table's, so none can drift from it."""
    assert tuple(ACTION_SCOPES) == table.rule_actions()
    assert set(table.names()) == {
        "mute",
        "ban",
        "reply",
        "comments",
        "log",
        "warn",
        "unmute",
        "unban",
        "moderator_add",
        "moderator_remove",
        "keyword_add",
        "keyword_remove",
    }
    # the console's moderator and keyword changes undo each other (add <-> remove)
    console = {"moderator_add", "moderator_remove", "keyword_add", "keyword_remove"}
    assert {k for k in table.names() if table.undoable(k)} == {"mute", "ban", "comments"} | console
    assert table.severity("ban", None) > table.severity("mute", None)
    assert table.severity("mute", None) > table.severity("mute", 86400.0)
    assert table.severity("mute", 600.0) > table.severity("mute", 300.0) > (0, 0.0)


@pytest.mark.parametrize(
    ("action", "params", "words"),
    [
        ("mute", {"duration_s": 600}, "mute 10m"),
        ("mute", {"duration_s": None}, "mute forever"),
        ("comments", {"enabled": False, "for_s": 120}, "comments off for 2m"),
        ("comments", {"enabled": True}, "comments on"),
        ("reply", {"text": "stop it"}, "reply 'stop it'"),
        ("warn", {"text": "last warning"}, "warn 'last warning'"),
        ("ban", {}, "ban"),
        ("log", {"text": "ignored"}, "log"),
        ("unmute", {}, "unmute"),
    ],
)
def test_one_description_of_an_action(action: str, params: dict[str, object], words: str) -> None:
    """The engine's decision, the rule's action, the audit view and the demo say an
    action in the same words."""
    assert table.describe(action, params) == words
