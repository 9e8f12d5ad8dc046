"""OAuth scope names, their aliases, and which rule actions each one allows (pure).

Euler's public scopes page spells two scopes differently from the API's own enum;
both spellings are accepted everywhere and stored in the API's spelling.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TypedDict

from modbot.actions.table import kind_of, rule_actions

KNOWN_SCOPES: frozenset[str] = frozenset(
    {
        "webcast:fetch",
        "webcast:bulk_live_check",
        "webcast:chat",
        "webcast:mute",
        "webcast:ban",
        "webcast:comments",
        "webcast:moderators",
        "webcast:live_analytics",
        "webcast:rankings",
        "webcast:user_earnings",
        "webcast:sign_url",
        "webcast:sensitive_words",
        "user:info",
        "user:consents",
    }
)

ALIASES: Mapping[str, str] = {
    "webcast:live_check": "webcast:bulk_live_check",
    "webcast:earnings": "webcast:user_earnings",
}


class _ActionScopes(Mapping[str, str | None]):
    """What each rule action needs, read from the action table when asked (so an action
    added there is known here). ``log`` and ``observe``-mode rules need nothing."""

    def __getitem__(self, action: str) -> str | None:
        kind = kind_of(action)
        if kind is None or not kind.in_rules:
            raise KeyError(action)
        return kind.scope

    def __iter__(self) -> Iterator[str]:
        return iter(rule_actions())

    def __len__(self) -> int:
        return len(rule_actions())


ACTION_SCOPES: Mapping[str, str | None] = _ActionScopes()

# What the daemon needs whatever the rules say: finding out who is live.
BASE_SCOPES: tuple[str, ...] = ("webcast:bulk_live_check",)


def canonical(scope: str) -> str:
    """Return the API spelling of a scope (aliases mapped, whitespace trimmed)."""
    name = scope.strip()
    return ALIASES.get(name, name)


def parse_scopes(value: object) -> frozenset[str]:
    """Read scopes given as a list of names or as one space-separated string."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        items: Iterable[object] = value.split()
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    else:
        msg = f"scopes must be a list or a space-separated string, not {type(value).__name__}"
        raise TypeError(msg)
    return frozenset(canonical(str(item)) for item in items if str(item).strip())


def scopes_for_actions(actions: Iterable[str]) -> list[str]:
    """The scopes to request for rules that use ``actions``, in a stable order."""
    wanted = set(BASE_SCOPES)
    for action in actions:
        scope = ACTION_SCOPES.get(action)
        if scope:
            wanted.add(scope)
    return sorted(wanted)


def allowed_actions(granted: Iterable[str]) -> dict[str, bool]:
    """For each rule action, whether the granted scopes allow it."""
    have = {canonical(s) for s in granted}
    return {action: scope is None or scope in have for action, scope in ACTION_SCOPES.items()}


def unknown_scopes(scopes: Iterable[str]) -> list[str]:
    """The names in ``scopes`` that are neither API scopes nor known aliases."""
    return sorted({s for s in scopes if canonical(s) not in KNOWN_SCOPES})


# What each console command needs (docs/console.md). `modbot auth login` asks for all of
# them by default, beside what the rules need: the console is part of modbot, so a grant
# made by a plain login lets every console command work. `nuke` acts through its --then
# action (mute or ban), so it needs that action's scope.
CONSOLE_COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mute/unmute, mutes", ("webcast:mute",)),
    ("ban/unban, bans", ("webcast:ban",)),
    ("comments", ("webcast:comments",)),
    ("say", ("webcast:chat",)),
    ("moderators", ("webcast:moderators",)),
    ("keywords", ("webcast:sensitive_words", "user:info")),
)


def console_scopes() -> list[str]:
    """Every scope a console command needs, in a stable order."""
    return sorted({s for _, needed in CONSOLE_COMMANDS for s in needed})


class ConsoleGrant(TypedDict):
    """Whether the grant allows one console command (the shape of ``auth status --json``)."""

    allowed: bool
    needs: list[str]
    missing: list[str]


def allowed_console(granted: Iterable[str]) -> dict[str, ConsoleGrant]:
    """For each console command, whether the grant allows it and what is missing."""
    have = {canonical(s) for s in granted}
    return {
        command: ConsoleGrant(
            allowed=all(s in have for s in needed),
            needs=list(needed),
            missing=[s for s in needed if s not in have],
        )
        for command, needed in CONSOLE_COMMANDS
    }
