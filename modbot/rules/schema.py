"""The rule language's vocabulary as data: keys, value forms, durations, templates (pure).

Lenient at the edge, strict inside: ``"10m"``, ``"mute 10m"`` and ``{mute: 10m}`` are
accepted here and nowhere else; the engine sees seconds and enums.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from modbot.actions.table import describe, kind_of, rule_actions
from modbot.events import EVENT_KINDS
from modbot.inert import shorten, spoken

VERSION = 1

# `on:` kinds a rule may name (stream_end, viewers and a moderator's own actions are the
# daemon's, not rules').
RULE_EVENTS: tuple[str, ...] = tuple(
    k for k in EVENT_KINDS if k not in ("stream_end", "viewers", "moderation")
)
TEXT_EVENTS = frozenset({"comment", "question"})
USER_EVENTS = frozenset(RULE_EVENTS)
GIFT_EVENTS = frozenset({"gift"})

FILE_KEYS = ("version", "lists", "defaults", "rules")
DEFAULT_KEYS = ("exempt", "normalize", "mode", "cooldown", "priority")
RULE_KEYS = (
    "id",
    "description",
    "on",
    "when",
    "then",
    "escalate",
    "warn",
    "mode",
    "cooldown",
    "exempt",
    "priority",
    "normalize",
    "enabled",
)
ROLES = ("owner", "moderator", "subscriber", "follower", "friend")
ACTIONS = rule_actions()  # the shipped ones; parsing reads the action table itself
MODES = ("enforce", "observe")
NORMALIZE = ("none", "basic", "standard")
RULE_ID = re.compile(r"^[a-z0-9-]{1,64}$")

TEXT_CHECKS = (
    "words",
    "contains",
    "regex",
    "equals",
    "starts_with",
    "ends_with",
    "links",
    "length",
    "caps_ratio",
    "repeated_chars",
    "emoji_count",
    "mentions",
    "zalgo",
    "language",
)
USER_CHECKS = (
    "is_owner",
    "is_moderator",
    "is_subscriber",
    "is_follower",
    "is_friend",
    "is_new",
    "gifter_level",
    "follower_count",
    "in",
)
GIFT_CHECKS = ("name", "diamonds", "total_diamonds")


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a ``when`` key takes and which events it makes sense for."""

    kind: str
    events: frozenset[str]


def _condition_keys() -> dict[str, KeySpec]:
    keys: dict[str, KeySpec] = {}
    for check in TEXT_CHECKS:
        keys[f"text.{check}"] = KeySpec(check, TEXT_EVENTS)
        if check != "language":
            keys[f"user.nickname.{check}"] = KeySpec(check, USER_EVENTS)
    for check in USER_CHECKS:
        keys[f"user.{check}"] = KeySpec(check, USER_EVENTS)
    for check in GIFT_CHECKS:
        keys[f"gift.{check}"] = KeySpec(check, GIFT_EVENTS)
    keys["rate"] = KeySpec("rate", USER_EVENTS)
    keys["repeat"] = KeySpec("repeat", TEXT_EVENTS)
    keys["room.comment_rate"] = KeySpec("comment_rate", USER_EVENTS)
    keys["any"] = KeySpec("any", USER_EVENTS)
    keys["all"] = KeySpec("all", USER_EVENTS)
    keys["not"] = KeySpec("not", USER_EVENTS)
    return keys


CONDITION_KEYS: Mapping[str, KeySpec] = _condition_keys()
STATE_KEYS = ("rate", "repeat")


class SchemaProblem(ValueError):
    """A value that does not fit; the message says what was expected."""


# --- durations -------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(?:(\d+)\s*([smhd])\s*)+$")
_DURATION_PART = re.compile(r"(\d+)\s*([smhd])")
MAX_DURATION = 366 * 86400


def parse_duration(value: object, *, allow_forever: bool = False) -> float | None:
    """``30s``, ``10m``, ``2h``, ``1d`` (or ``1h30m``) in seconds; ``forever`` is None."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("forever", "permanent") and allow_forever:
            return None
        if _DURATION.match(text):
            seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
            if seconds <= 0:
                raise SchemaProblem("a duration must be longer than 0")
            if seconds > MAX_DURATION:
                raise SchemaProblem("a duration may be at most 366d")
            return float(seconds)
    forever = " or 'forever'" if allow_forever else ""
    raise SchemaProblem(f"expected a duration like 30s, 10m, 2h or 1d{forever}, got {value!r}")


# --- comparisons -------------------------------------------------------------------------

_COMPARISON = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")


def parse_comparison(value: object) -> tuple[str, float]:
    """``">= 0.8"`` as (op, number); a bare number means ``==``."""
    if isinstance(value, bool):
        raise SchemaProblem(f"expected a number or a comparison like '>= 5', got {value!r}")
    if isinstance(value, int | float):
        return "==", float(value)
    if isinstance(value, str):
        match = _COMPARISON.match(value)
        if match:
            return match.group(1), float(match.group(2))
    raise SchemaProblem(
        f"expected a number or a comparison like '>= 5' (< <= > >= == !=), got {value!r}"
    )


# --- templates ------------------------------------------------------------------------------

TEMPLATE_FIELDS = ("user.unique_id", "user.nickname", "rule.id", "duration", "streamer")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
FIELD_LIMIT = 64
REPLY_LIMIT = 150


@dataclass(frozen=True, slots=True)
class Template:
    """A reply text with ``{field}`` placeholders, parsed once."""

    source: str
    parts: tuple[tuple[Literal["text", "field"], str], ...]

    @property
    def fields(self) -> frozenset[str]:
        """The fields the text fills in."""
        return frozenset(value for kind, value in self.parts if kind == "field")

    @property
    def literal(self) -> str:
        """The text without its fields (what the rule author wrote)."""
        return "".join(value for kind, value in self.parts if kind == "text")

    def filled(self, values: Mapping[str, str]) -> list[str]:
        """The field values as :meth:`render` puts them into the text."""
        return [spoken(values.get(v, ""), FIELD_LIMIT) for kind, v in self.parts if kind == "field"]

    def render(self, values: Mapping[str, str]) -> str:
        """The text with fields filled in; viewer-controlled values are made inert.

        A field loses every invisible and bidirectional control character
        (:mod:`modbot.inert`) and is cut to ``FIELD_LIMIT`` characters.
        """
        out = []
        for kind, value in self.parts:
            if kind == "text":
                out.append(value)
            else:
                out.append(spoken(values.get(value, ""), FIELD_LIMIT))
        return shorten("".join(out), REPLY_LIMIT)


def parse_template(value: object) -> Template:
    """A template string; unknown ``{fields}`` are errors that list the known ones."""
    if not isinstance(value, str) or not value.strip():
        raise SchemaProblem(f"expected a message text, got {value!r}")
    parts: list[tuple[Literal["text", "field"], str]] = []
    last = 0
    for match in _PLACEHOLDER.finditer(value):
        if match.start() > last:
            parts.append(("text", value[last : match.start()]))
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(("text", token[0]))
        else:
            name = (match.group(1) or "").strip()
            if name not in TEMPLATE_FIELDS:
                known = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
                raise SchemaProblem(f"unknown template field {{{name}}}; known fields: {known}")
            parts.append(("field", name))
        last = match.end()
    if last < len(value):
        parts.append(("text", value[last:]))
    if "\n" in value:
        raise SchemaProblem("a chat message must be one line")
    return Template(value, tuple(parts))


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action of a rule, in its strict form (``kind`` names a row of the action table)."""

    kind: str
    duration_s: float | None = None  # mute: seconds, None = forever
    template: Template | None = None  # reply
    enabled: bool | None = None  # comments
    for_s: float | None = None  # comments: turned back after this long
    everywhere: bool = False  # ban: in every configured streamer's rooms (remembered bans)

    def describe(self) -> str:
        text = self.template.source if self.template is not None else None
        facts = {"duration_s": self.duration_s, "text": text, "enabled": self.enabled}
        return describe(self.kind, facts | {"for_s": self.for_s})


def _unknown(value: object) -> SchemaProblem:
    return SchemaProblem(f"unknown action {value!r}; expected one of {', '.join(rule_actions())}")


def parse_action(value: object, *, in_steps: bool = False) -> ActionSpec:
    """``ban``, ``log``, ``warn``, ``"mute 10m"``, ``{mute: 10m}``, ``{reply: T}``,
    ``{comments: {enabled: false, for: 2m}}``: the forms the action table's ``takes``
    allows."""
    if isinstance(value, str):
        word, _, rest = value.strip().partition(" ")
        rest = rest.strip()
        kind = kind_of(word)
        if kind is None or not kind.in_rules:
            raise _unknown(value)
        if kind.takes == "duration":
            if not rest:
                msg = f"{word} needs a duration, like '{word} 10m' or '{word} forever'"
                raise SchemaProblem(msg)
            return ActionSpec(word, duration_s=parse_duration(rest, allow_forever=True))
        if kind.takes == "nothing" and not rest:
            if kind.only_in_steps is not None and not in_steps:
                raise SchemaProblem(kind.only_in_steps)
            return ActionSpec(word)
        if kind.takes == "text":
            raise SchemaProblem(f"write a {word} as {{{word}: TEXT}} (a mapping)")
        raise _unknown(value)
    if isinstance(value, Mapping):
        if len(value) != 1:
            raise SchemaProblem(f"an action mapping has exactly one key, got {sorted(value)}")
        ((name, arg),) = value.items()
        kind = kind_of(name) if isinstance(name, str) else None
        if kind is None or not kind.in_rules:
            raise _unknown(name)
        if kind.takes == "duration":
            return ActionSpec(name, duration_s=parse_duration(arg, allow_forever=True))
        if kind.takes == "text":
            return ActionSpec(name, template=parse_template(arg))
        if kind.takes == "toggle":
            return _toggle(name, arg)
        if kind.only_in_steps is None and arg in (None, True):
            return ActionSpec(name)
        if name == "ban" and isinstance(arg, Mapping):
            return _ban(arg)
        raise _unknown(name)
    raise SchemaProblem(
        f"expected an action like 'ban', 'mute 10m' or {{reply: ...}}, got {value!r}"
    )


def _ban(arg: Mapping[object, object]) -> ActionSpec:
    """``{ban: {everywhere: true}}``: the ban is remembered for every configured streamer."""
    extra = set(arg) - {"everywhere"}
    if extra:
        raise SchemaProblem(f"ban takes everywhere, not {sorted(map(str, extra))}")
    everywhere = arg.get("everywhere", False)
    if not isinstance(everywhere, bool):
        raise SchemaProblem(f"ban.everywhere must be true or false, got {everywhere!r}")
    return ActionSpec("ban", everywhere=everywhere)


def _toggle(name: str, arg: object) -> ActionSpec:
    """``{comments: {enabled: false, for: 2m}}``."""
    if not isinstance(arg, Mapping) or "enabled" not in arg:
        raise SchemaProblem(f"{name} takes {{enabled: false, for: 2m}}")
    extra = set(arg) - {"enabled", "for"}
    if extra:
        raise SchemaProblem(f"{name} takes enabled and for, not {sorted(extra)}")
    enabled = arg["enabled"]
    if not isinstance(enabled, bool):
        raise SchemaProblem(f"{name}.enabled must be true or false, got {enabled!r}")
    for_s = parse_duration(arg["for"]) if arg.get("for") is not None else None
    if for_s is not None and enabled:
        raise SchemaProblem(f"{name}.for only makes sense with enabled: false")
    return ActionSpec(name, enabled=enabled, for_s=for_s)
