"""Compiled conditions: small predicates built once at load, called per event (pure).

Each predicate takes the per-event ``EvalContext`` and returns an explanation string
when it holds (what matched, for the audit log) or None when it does not. The context
computes each view of the text (normalised words and hits per level, links, measures)
at most once per event, and only when some rule asks for it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from modbot.events import Event
from modbot.rules.text import Hit, Level, Matcher, Measures, domain_allowed

Field = Literal["text", "nickname"]
TermMode = Literal["words", "contains", "equals", "starts_with", "ends_with"]

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class RoomRates(Protocol):
    """What conditions may ask of the engine's state."""

    def comment_rate(self, room: str, now: float) -> float: ...

    def is_new(self, streamer: str, user_id: str) -> bool: ...


class EvalContext:
    """One event under evaluation, with lazily computed views of its text.

    A plain class (one is made for every event): a dataclass's generated ``__init__``
    stays interpreted in the compiled build, this one is native.
    """

    __slots__ = ("_hits", "_links", "_measures", "event", "matchers", "now", "state")

    def __init__(
        self, event: Event, now: float, matchers: Mapping[Level, Matcher], state: RoomRates
    ) -> None:
        self.event = event
        self.now = now
        self.matchers = matchers
        self.state = state
        self._hits: dict[tuple[Field, Level], Sequence[Hit]] = {}
        self._measures: dict[Field, Measures] = {}
        self._links: dict[Field, list[str]] = {}

    def text(self, which: Field) -> str:
        if which == "text":
            return self.event.text
        return self.event.user.nickname if self.event.user else ""

    def hits(self, which: Field, level: Level) -> Sequence[Hit]:
        key = (which, level)
        found = self._hits.get(key)
        if found is None:
            text = self.text(which)
            matcher = self.matchers[level]
            if not text:
                found = ()
            elif which == "text":
                found = matcher.find(text)
            else:
                found = matcher.find_remembered(text)
            self._hits[key] = found
        return found

    def measures(self, which: Field) -> Measures:
        found = self._measures.get(which)
        if found is None:
            found = self.matchers["standard"].reader.measure(self.text(which))
            self._measures[which] = found
        return found

    def links(self, which: Field) -> list[str]:
        found = self._links.get(which)
        if found is None:
            text = self.text(which)
            found = self.matchers["standard"].reader.links(text) if text else []
            self._links[which] = found
        return found


Predicate = Callable[[EvalContext], str | None]


@dataclass(frozen=True, slots=True)
class Terms:
    """``text.words`` and friends: any of a set of list terms, matched by mode."""

    label: str
    which: Field
    level: Level
    mode: TermMode
    term_ids: frozenset[int]
    names: dict[int, str]

    def __call__(self, ctx: EvalContext) -> str | None:
        for hit in ctx.hits(self.which, self.level):
            if hit.term_id not in self.term_ids:
                continue
            ok = (
                (self.mode == "words" and hit.word_bounded)
                or self.mode == "contains"
                or (self.mode == "equals" and hit.at_start and hit.at_end)
                or (self.mode == "starts_with" and hit.at_start)
                or (self.mode == "ends_with" and hit.at_end)
            )
            if ok:
                term = self.names.get(hit.term_id, "?")
                return f"{self.label} matched {term!r} (as {hit.words!r})"
        return None


@dataclass(frozen=True, slots=True)
class Regex:
    """``text.regex``: an RE2 pattern (or several) on the raw text."""

    label: str
    which: Field
    pattern: Any  # a compiled re2 pattern
    source: str

    def __call__(self, ctx: EvalContext) -> str | None:
        match = self.pattern.search(ctx.text(self.which))
        if match is None:
            return None
        return f"{self.label} /{self.source}/ matched {match.group(0)[:60]!r}"


@dataclass(frozen=True, slots=True)
class Links:
    """``text.links``: a URL or domain that is not allowed."""

    label: str
    which: Field
    allow: tuple[str, ...]

    def __call__(self, ctx: EvalContext) -> str | None:
        for domain in ctx.links(self.which):
            if not domain_allowed(domain, self.allow):
                return f"{self.label}: {domain}"
        return None


@dataclass(frozen=True, slots=True)
class Compare:
    """A number or flag of the event compared with a value (``">= 0.8"``, ``false``)."""

    label: str
    get: Callable[[EvalContext], Any]
    op: str
    value: Any

    def __call__(self, ctx: EvalContext) -> str | None:
        actual = self.get(ctx)
        if actual is None:
            return None
        if OPS[self.op](actual, self.value):
            if isinstance(self.value, bool):
                return f"{self.label} is {str(actual).lower()}"
            return f"{self.label} is {_num(actual)} ({self.op} {_num(self.value)})"
        return None


@dataclass(frozen=True, slots=True)
class OneOf:
    """A string of the event is one of a set (``text.language``, ``gift.name``, ``user.in``)."""

    label: str
    get: Callable[[EvalContext], Sequence[str]]
    values: frozenset[str]

    def __call__(self, ctx: EvalContext) -> str | None:
        for candidate in self.get(ctx):
            if candidate and candidate.casefold() in self.values:
                return f"{self.label} is {candidate!r}"
        return None


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every part holds (a mapping's sibling keys, or ``all:``)."""

    parts: tuple[Predicate, ...]

    def __call__(self, ctx: EvalContext) -> str | None:
        reasons = []
        for part in self.parts:
            reason = part(ctx)
            if reason is None:
                return None
            reasons.append(reason)
        return "; ".join(reasons)


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one part holds (``any:``)."""

    parts: tuple[Predicate, ...]

    def __call__(self, ctx: EvalContext) -> str | None:
        for part in self.parts:
            reason = part(ctx)
            if reason is not None:
                return reason
        return None


@dataclass(frozen=True, slots=True)
class Not:
    """The part does not hold (``not:``)."""

    part: Predicate
    label: str

    def __call__(self, ctx: EvalContext) -> str | None:
        return None if self.part(ctx) is not None else f"not ({self.label})"


# --- getters (what a condition compares), built at compile time ----------------------------


def measure_of(which: Field, name: str) -> Callable[[EvalContext], Any]:
    """A text measure (length, caps_ratio, ...) of the comment or the nickname."""

    def get(ctx: EvalContext) -> Any:
        return getattr(ctx.measures(which), name)

    return get


def user_attr(name: str) -> Callable[[EvalContext], Any]:
    """A field of the event's user (None when there is no user)."""

    def get(ctx: EvalContext) -> Any:
        return getattr(ctx.event.user, name, None)

    return get


def gift_attr(name: str) -> Callable[[EvalContext], Any]:
    """A number of the event's gift (None when it is not a gift)."""

    def get(ctx: EvalContext) -> Any:
        return getattr(ctx.event.gift, name, None)

    return get


def user_is_new(ctx: EvalContext) -> bool | None:
    user = ctx.event.user
    return ctx.state.is_new(ctx.event.streamer, user.user_id) if user else None


def user_ids(ctx: EvalContext) -> list[str]:
    user = ctx.event.user
    return [user.unique_id, user.user_id] if user else []


def gift_name(ctx: EvalContext) -> list[str]:
    return [ctx.event.gift.name] if ctx.event.gift else []


def language(ctx: EvalContext) -> list[str]:
    code = ctx.event.language
    return [code, code.split("-")[0]] if code else []


def room_comment_rate(ctx: EvalContext) -> float:
    return ctx.state.comment_rate(ctx.event.room_id or ctx.event.streamer, ctx.now)


def _num(value: Any) -> Any:
    if isinstance(value, float) and not isinstance(value, bool):
        return int(value) if value.is_integer() else round(value, 3)
    return value


def always(_ctx: EvalContext) -> str | None:
    """The condition of a rule without ``when``."""
    return "always"
