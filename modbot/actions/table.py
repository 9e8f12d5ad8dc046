"""The action vocabulary: one row per action, and everything modbot knows about it (pure).

A row says how a rule file writes the action (``takes``), what it calls (the client
method, the route it is limited and paused by, the OAuth scope), how it weighs in the
engine's merge (``severity``; a repeat within one event is dropped), how it is undone
(``inverse``, or why it cannot be), how old a call interrupted by a crash may be and
still be made (``recover_age``), and how it is described (:func:`describe`). The rule
schema, the engine's merge, the plan, the scope checks, the gate, the executor, the
audit filters and views, undo and the CLI read this table; none of them names an
action. Adding one is a row here (and, for a new API route, a client method).

Everything here is read when it is needed, never copied at import, so a row added
later (``ACTIONS[kind.name] = kind``) is known to every reader from then on.

This module sits below the layers that read it (the rule core and the Euler edge
included): it imports nothing of modbot's but the inert-text helpers, and names the
client and the intent for the type checker only.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from modbot.inert import shown

if TYPE_CHECKING:
    from modbot.actions.plan import Intent
    from modbot.euler.client import EulerClient

Takes = Literal["nothing", "duration", "text", "toggle"]
"""What a rule writes after the action's name: ``ban``; ``mute 10m`` or ``{mute: 10m}``;
``{reply: TEXT}``; ``{comments: {enabled: false, for: 2m}}``."""

Call = Callable[["EulerClient", "Intent"], Awaitable[None]]
"""The API call of an action: the client, and the intent to carry out."""

RECOVER_AGE = 600.0  # seconds: how old an interrupted call may be and still be made


@dataclass(frozen=True)
class Expiry:
    """A durable timer that ends an action later (the mute the API cannot make that long,
    comments off for a while): its kind in the audit database, and what it does."""

    timer: str
    action: str
    ends: str  # what ends, in the timer's audit note: "the mute of #12 expired"
    enabled: bool | None = None


@dataclass(frozen=True)
class ActionKind:
    """One action: its words, its call, its weight, its undo."""

    name: str
    takes: Takes = "nothing"
    in_rules: bool = True  # a rule may name it (unmute and unban are undo's and the timers')
    only_in_steps: str | None = None  # why a rule's ``then`` may not name it (escalate only)
    route: str | None = None  # the route its calls are limited and paused by; None: no call
    scope: str | None = None  # the OAuth scope the call needs
    call: Call | None = None
    severity: int = 0  # in the merge: the most severe enforcement wins; 0: not one
    chat: bool = False  # says something in the room: the speech check, one per interval
    repeated: str = ""  # the merge's note on a repeat within one event ("": repeats stay)
    inverse: str | None = None  # the action that undoes it (a toggle undoes by flipping)
    not_undoable: str | None = None  # why it cannot be undone ("#ID " goes before it)
    stepped_duration: bool = False  # the API takes only some lengths (policy.plan_mute)
    expiry: Expiry | None = None  # the timer that ends it (a long mute, comments off for)
    recover_age: float = RECOVER_AGE  # an interrupted call older than this is not made
    carried: tuple[str, ...] = ()  # params its undo and a replay after a crash carry over
    needs_room: bool = True  # acts in a live room (a moderator is the account's: no room)

    @property
    def calls_api(self) -> bool:
        return self.call is not None


# --- the calls -------------------------------------------------------------------------


async def _mute(client: EulerClient, intent: Intent) -> None:
    duration = intent.api_duration
    assert duration is not None
    await client.mute(intent.room_id, intent.user_id, duration, intent.msg_id or None)


async def _unmute(client: EulerClient, intent: Intent) -> None:
    await client.unmute(intent.room_id, intent.user_id)


async def _ban(client: EulerClient, intent: Intent) -> None:
    await client.ban(intent.room_id, intent.user_id, intent.msg_id or None)


async def _unban(client: EulerClient, intent: Intent) -> None:
    await client.unban(intent.room_id, intent.user_id)


async def _chat(client: EulerClient, intent: Intent) -> None:
    await client.send_chat(intent.room_id, intent.text or "")


async def _comments(client: EulerClient, intent: Intent) -> None:
    await client.toggle_comments(intent.room_id, enabled=bool(intent.enabled))


async def _moderator_add(client: EulerClient, intent: Intent) -> None:
    await client.add_moderator(str(intent.extra["anchor_id"]), intent.user_id)


async def _moderator_remove(client: EulerClient, intent: Intent) -> None:
    await client.remove_moderator(str(intent.extra["anchor_id"]), intent.user_id)


async def _keyword_add(client: EulerClient, intent: Intent) -> None:
    await client.add_sensitive_word(
        intent.room_id, str(intent.extra["sec_anchor_id"]), str(intent.extra["word"])
    )


async def _keyword_remove(client: EulerClient, intent: Intent) -> None:
    """Every entry of the word in the filter goes (the filter knows words by id)."""
    sec, word = str(intent.extra["sec_anchor_id"]), str(intent.extra["word"])
    for listed in await client.list_sensitive_words(intent.room_id, sec):
        if listed.word == word:
            await client.remove_sensitive_word(intent.room_id, sec, listed.word_id)


# A late chat message confuses more than it helps: replayed within a minute only.
_CHAT_AGE = 60.0


def _chat_row(
    name: str, *, takes: Takes = "nothing", only_in_steps: str | None = None
) -> ActionKind:
    """A chat message (``reply``, ``warn``): said in the room after the speech check, once
    per event, never taken back, replayed after a crash within a minute only."""
    return ActionKind(
        name,
        takes=takes,
        only_in_steps=only_in_steps,
        route="chat",
        scope="webcast:chat",
        call=_chat,
        chat=True,
        repeated="the same reply is already sent for this event",
        not_undoable="is a chat message; a sent message cannot be taken back",
        recover_age=_CHAT_AGE,
    )


_REVERSAL = "reversed an earlier action; it cannot be undone"


def _each_others_inverse(
    add: tuple[str, str, Call],
    remove: tuple[str, str, Call],
    *,
    scope: str,
    carried: tuple[str, ...],
    needs_room: bool = True,
) -> tuple[ActionKind, ActionKind]:
    """Two actions of the console (never of a rule) that undo each other: each
    ``(name, route, call)``, with the scope they share and the params an undo carries."""

    def row(one: tuple[str, str, Call], other: tuple[str, str, Call]) -> ActionKind:
        name, route, call = one
        return ActionKind(
            name,
            in_rules=False,
            route=route,
            scope=scope,
            call=call,
            inverse=other[0],
            carried=carried,
            needs_room=needs_room,
        )

    return row(add, remove), row(remove, add)


ACTIONS: dict[str, ActionKind] = {
    kind.name: kind
    for kind in (
        ActionKind(
            "mute",
            takes="duration",
            route="mute",
            scope="webcast:mute",
            call=_mute,
            severity=2,
            inverse="unmute",
            stepped_duration=True,
            expiry=Expiry("unmute", "unmute", "mute"),
        ),
        ActionKind(
            "ban",
            route="ban",
            scope="webcast:ban",
            call=_ban,
            severity=3,
            inverse="unban",
        ),
        _chat_row("reply", takes="text"),
        ActionKind(
            "comments",
            takes="toggle",
            route="toggle_comments",
            scope="webcast:comments",
            call=_comments,
            repeated="the same comments toggle is already made",
            inverse="comments",
            expiry=Expiry("comments_on", "comments", "comments off", enabled=True),
        ),
        ActionKind("log", not_undoable="only logged; there is nothing to undo"),
        _chat_row("warn", only_in_steps="warn is an escalate step; use reply: TEXT in then"),
        ActionKind(
            "unmute",
            in_rules=False,
            route="unmute",
            scope="webcast:mute",
            call=_unmute,
            not_undoable=_REVERSAL,
        ),
        ActionKind(
            "unban",
            in_rules=False,
            route="unban",
            scope="webcast:ban",
            call=_unban,
            not_undoable=_REVERSAL,
        ),
        *_each_others_inverse(
            ("moderator_add", "add_moderator", _moderator_add),
            ("moderator_remove", "remove_moderator", _moderator_remove),
            scope="webcast:moderators",
            carried=("anchor_id",),
            needs_room=False,
        ),
        *_each_others_inverse(
            ("keyword_add", "add_sensitive_word", _keyword_add),
            ("keyword_remove", "remove_sensitive_word", _keyword_remove),
            scope="webcast:sensitive_words",
            carried=("sec_anchor_id", "word", "list"),
        ),
    )
}
"""Every action, by name, in the order the docs and messages list them."""


def kind_of(action: str) -> ActionKind | None:
    """The row of ``action`` (None: no action modbot knows)."""
    return ACTIONS.get(action)


def names() -> tuple[str, ...]:
    """Every action's name (what ``modbot audit --action`` accepts)."""
    return tuple(ACTIONS)


def rule_actions() -> tuple[str, ...]:
    """The actions a rule may name."""
    return tuple(k.name for k in ACTIONS.values() if k.in_rules)


def scope_of(action: str) -> str | None:
    """The OAuth scope ``action`` needs (None: none, or no such action)."""
    kind = ACTIONS.get(action)
    return None if kind is None else kind.scope


def routes() -> frozenset[str]:
    """Every route an action calls."""
    return frozenset(k.route for k in ACTIONS.values() if k.route is not None)


def expiry(timer: str) -> Expiry | None:
    """What a durable timer of kind ``timer`` does (None: no action sets such timers)."""
    return next(
        (k.expiry for k in ACTIONS.values() if k.expiry is not None and k.expiry.timer == timer),
        None,
    )


def undoable(action: str) -> bool:
    """Whether a done ``action`` can be reversed."""
    kind = ACTIONS.get(action)
    return kind is not None and kind.inverse is not None


def severity(action: str, duration_s: float | None) -> tuple[int, float]:
    """How severe an enforcement is: ban > longer mute > shorter mute (forever longest).

    The same order de-duplicates calls in a burst: a longer mute is not a repeat.
    """
    kind = ACTIONS.get(action)
    if kind is None:
        return (0, 0.0)
    if kind.takes == "duration":
        return (kind.severity, float("inf") if duration_s is None else float(duration_s))
    return (kind.severity, 0.0)


# --- words -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)  # a ruleset has a handful of durations, said per firing
def format_duration(seconds: float | None) -> str:
    """The short form of a duration (``10m``, ``1h30m``, ``forever``)."""
    if seconds is None:
        return "forever"
    left = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or "0s"


def describe(action: str, params: Mapping[str, Any], *, text_limit: int | None = None) -> str:
    """An action in a few words: ``mute 10m``, ``ban``, ``comments off for 2m``,
    ``reply 'hi'``.

    ``params`` are the audit row's (``duration_s``, ``enabled``, ``for_s``, ``text``);
    with ``text_limit`` a text is shown inert and cut to that many characters.
    """
    kind = ACTIONS.get(action)
    takes = kind.takes if kind is not None else "nothing"
    if takes == "duration":
        seconds = params.get("duration_s")
        return f"{action} {format_duration(None if seconds is None else float(seconds))}"
    if takes == "toggle":
        state = "on" if params.get("enabled") else "off"
        for_s = params.get("for_s")
        return f"{action} {state}" + (f" for {format_duration(float(for_s))}" if for_s else "")
    if kind is not None and kind.carried:  # the moderator's id is in the row; a word is not
        word = params.get("word")
        return f"{action} {shown(str(word), text_limit or 80)!r}" if word is not None else action
    text = params.get("text")
    if kind is not None and (kind.chat or takes == "text") and text is not None:
        said = str(text) if text_limit is None else shown(str(text), text_limit)
        return f"{action} {said!r}"
    return action
