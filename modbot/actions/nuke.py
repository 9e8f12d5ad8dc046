"""Nukes and raid sweeps: who one incident acts on (pure: no I/O, no clock).

A *sweep* acts on every viewer whose comment matches, each viewer once, as one
incident: over the comments already said (:func:`select`, from
:class:`modbot.actions.recent.RecentComments`) and over new ones until it ends
(:meth:`Sweep.offer`). Two things start one:

- ``modbot nuke PATTERN``: PATTERN is a phrase matched as ``text.words`` is (the rule
  compiler builds the matcher: the same normalisation, word boundaries and limits) or
  ``/regex/``, compiled by RE2 as ``text.regex`` is (:func:`compile_pattern`);
- a per-room ``repeat`` rule that trips with an action on the viewer (mute, ban): its
  cluster is the room's recent near-identical copies of the text that tipped the count
  (:class:`NearCopies`, the engine's own similarity on the engine's own key), and the
  sweep goes on catching copies for the rule's window after the last one it caught.

The streamer (and so modbot, which speaks as the streamer) and moderators are never
acted on; a repeat rule's sweep also spares whom the rule exempts. A sweep acts on at
most ``MOST_VIEWERS`` viewers, so its memory of who it reached is bounded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from rapidfuzz.distance import Indel
from rapidfuzz.process import extractOne

from modbot.actions.recent import MODERATOR, OWNER, ROLE_BITS, Said
from modbot.actions.table import format_duration, kind_of
from modbot.events import Event, User
from modbot.inert import shown
from modbot.rules.compile import MAX_REGEX, MAX_TERM_LENGTH, CompiledRule, compile_texts
from modbot.rules.conditions import EvalContext
from modbot.rules.engine import KEY_SOURCE, Decision
from modbot.rules.schema import SchemaProblem, parse_action, parse_duration
from modbot.rules.state import FUZZY_CANDIDATES
from modbot.rules.text import Level, Matcher, similarity_key

MOST_VIEWERS = 10_000  # viewers one sweep acts on, at most
MAX_SINCE = 15 * 60.0  # how far back a nuke may look (the memory keeps no more)
MAX_FOR = 24 * 3600.0  # how long a nuke may go on catching new comments
SWEEP_SCAN = 2_000  # recent comments a tripped repeat rule's cluster is looked for in
# A repeat rule's sweep goes on for the rule's window after each copy it catches, but
# never longer than this after it started.
SWEEP_LONGEST = 10 * 60.0
# rapidfuzz turns a similarity cutoff into a distance one in floating point, so a pair
# exactly at the threshold can fall short: as the engine's state does, ask a little
# lower and let the score decide.
_CUTOFF_SLACK = 1e-4

NUKE_RULE = "nuke"


class PatternRefused(ValueError):
    """A nuke pattern modbot will not use (the message says why, for the operator)."""


Match = Callable[[Said], str | None]
"""Why a remembered comment matches (None: it does not)."""


# --- nuke patterns ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    """A nuke's PATTERN, compiled: ``matches(said)`` says why a comment matches."""

    source: str
    kind: Literal["phrase", "regex"]
    rule: CompiledRule
    matchers: Mapping[Level, Matcher]  # the compiled ruleset's

    def matches(self, said: Said) -> str | None:
        event = Event(
            "comment",
            _EPOCH,
            "",
            msg_id=said.msg_id,
            user=User(said.user_id, said.unique_id),
            text=said.text,
        )
        ctx = EvalContext(event, said.t, self.matchers, _NO_RATES)
        return self.rule.condition(ctx)

    def describe(self) -> str:
        return f"/{self.source}/" if self.kind == "regex" else repr(self.source)


class _NoRates:
    """A pattern asks nothing of the room (it is one ``text.*`` condition)."""

    def comment_rate(self, room: str, now: float) -> float:
        del room, now
        return 0.0

    def is_new(self, streamer: str, user_id: str) -> bool:
        del streamer, user_id
        return False


_NO_RATES = _NoRates()
_EPOCH = datetime.fromtimestamp(0, UTC)


def compile_pattern(pattern: str) -> Pattern:
    """A nuke PATTERN: ``/regex/`` (RE2, as ``text.regex``) or a phrase (as ``text.words``).

    Raises :class:`PatternRefused` for an empty phrase, a phrase or regex longer than
    the rules allow, a regex RE2 refuses, or a regex that matches an empty comment
    (it would match every comment).
    """
    if not isinstance(pattern, str):
        raise PatternRefused("the pattern must be text")
    regex = len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/")
    if regex:
        source = pattern[1:-1]
        if not source:
            raise PatternRefused("the regex // is empty: it would match every comment")
        if len(source) > MAX_REGEX:
            raise PatternRefused(
                f"the regex has {len(source):,} characters; a regex may have at most {MAX_REGEX:,}"
            )
        condition: dict[str, object] = {"text.regex": source}
    else:
        source = " ".join(pattern.split())
        if not source:
            raise PatternRefused(
                "the phrase is empty: give the words to match, or /regex/ for a pattern"
            )
        if len(source) > MAX_TERM_LENGTH:
            raise PatternRefused(
                f"the phrase has {len(source):,} characters; a phrase may have at most "
                f"{MAX_TERM_LENGTH:,}"
            )
        # A leading '@' would make it a list's name: a space keeps it a phrase (the
        # matcher reads words, so the space changes nothing else).
        condition = {"text.words": f" {source}" if source.startswith("@") else source}
    document = {
        "version": 1,
        "rules": [{"id": NUKE_RULE, "on": "comment", "when": condition, "then": ["log"]}],
    }
    ruleset, diagnostics = compile_texts({"nuke": json.dumps(document, ensure_ascii=False)})
    if ruleset is None or not ruleset.rules:
        problem = next((d.message for d in diagnostics if d.severity == "error"), "not usable")
        problem = problem.removeprefix("text.words: ").removeprefix("text.regex: ")
        what = "regex" if regex else "phrase"
        raise PatternRefused(f"the {what} cannot be used: {shown(problem, 300)}")
    compiled = Pattern(source, "regex" if regex else "phrase", ruleset.rules[0], ruleset.matchers)
    if regex and compiled.matches(Said(0.0, "", "", "", "", 0)) is not None:
        raise PatternRefused(
            f"the regex /{shown(source, 100)}/ matches an empty comment, so it would match "
            "every comment; make it need some text"
        )
    return compiled


# --- the action -------------------------------------------------------------------------


@dataclass(frozen=True)
class Then:
    """What a sweep does to each viewer: ``mute 5m``, ``mute forever``, ``ban`` or ``log``."""

    action: str
    duration_s: float | None = None

    def describe(self) -> str:
        if self.action == "mute":
            return f"mute {format_duration(self.duration_s)}"
        return self.action


def parse_then(text: str) -> Then:
    """``--then``: an action on one viewer (mute DURATION, ban) or ``log`` (audit only)."""
    try:
        spec = parse_action(text)
    except SchemaProblem as exc:
        raise PatternRefused(f"--then: {exc}") from None
    kind = kind_of(spec.kind)
    if kind is None or (kind.severity <= 0 and spec.kind != "log"):
        raise PatternRefused(
            f"--then: {spec.kind} is not an action on a viewer; use 'mute 5m', "
            "'mute forever', 'ban' or 'log'"
        )
    return Then(spec.kind, spec.duration_s)


def parse_span(text: str, *, option: str, longest: float, zero: bool = False) -> float:
    """``--since`` / ``--for``: a duration (``0`` too, where ``zero``), at most ``longest``."""
    if zero and text.strip() in ("0", "0s", "0m"):
        return 0.0
    try:
        seconds = parse_duration(text)
    except SchemaProblem as exc:
        raise PatternRefused(f"{option}: {exc}") from None
    assert seconds is not None
    if seconds > longest:
        raise PatternRefused(f"{option}: at most {format_duration(longest)}")
    return seconds


# --- near copies (a repeat rule's cluster) ----------------------------------------------


def copy_key(text: str) -> str:
    """The engine's copy-paste key of a text (``Engine.evaluate``'s, for ``repeat``)."""
    head = text[:KEY_SOURCE]
    return similarity_key(head) or head


@dataclass(frozen=True)
class NearCopies:
    """A comment matches when its key is near-identical to one of ``keys``."""

    keys: tuple[str, ...]  # at most FUZZY_CANDIDATES: the first copies found
    similarity: float

    def __call__(self, said: Said) -> str | None:
        key = copy_key(said.text)
        if key in self.keys:
            return "a copy of the raid's text"
        found = extractOne(
            key,
            self.keys,
            scorer=Indel.normalized_similarity,
            score_cutoff=self.similarity - _CUTOFF_SLACK,
        )
        if found is None or found[1] < self.similarity:
            return None
        return f"a near copy of the raid's text (similarity {found[1]:.2f})"


def cluster(
    recent: Iterable[Said], tipping: Said, similarity: float, scan: int = SWEEP_SCAN
) -> tuple[NearCopies, list[Said]]:
    """The near-identical copies of ``tipping`` among ``recent`` (newest first, at most
    ``scan`` looked at), with the matcher of later copies."""
    first = copy_key(tipping.text)
    keys = [first]
    copies: list[Said] = []
    near = NearCopies((first,), similarity)
    for i, said in enumerate(recent):
        if i >= scan:
            break
        if said.msg_id == tipping.msg_id and said.user_id == tipping.user_id:
            continue
        if near(said) is not None:
            copies.append(said)
            key = copy_key(said.text)
            if len(keys) < FUZZY_CANDIDATES and key not in keys:
                keys.append(key)
    return NearCopies(tuple(keys), similarity), copies


# --- sweeps -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Spares:
    """Whom a sweep never acts on: these roles, these viewers, and the streamer."""

    roles: int = OWNER | MODERATOR
    ids: frozenset[str] = frozenset()  # user ids and folded unique ids

    @classmethod
    def of(cls, roles: Iterable[str], ids: Iterable[str] = ()) -> Spares:
        bits = OWNER | MODERATOR
        for role in roles:
            bits |= ROLE_BITS.get(role, 0)
        return cls(bits, frozenset(i.casefold() for i in ids))

    def spared(self, said: Said) -> bool:
        return bool(said.roles & self.roles) or (
            bool(self.ids) and (said.user_id in self.ids or said.unique_id.casefold() in self.ids)
        )


@dataclass(frozen=True)
class Target:
    """One viewer a sweep acts on, and the comment that put them in it."""

    said: Said
    why: str
    room: str


@dataclass
class Sweep:
    """One incident's reach: who it acted on, until when it goes on, what it does.

    ``room`` is the one room a repeat rule's sweep watches; a nuke (``room`` None)
    watches every room of its streamer. ``incident`` is set once the incident is
    recorded (the targets wait for it in order).
    """

    streamer: str
    match: Match
    then: Then
    until: float  # epoch seconds (event time) after which new comments are not looked at
    room: str | None = None
    spares: Spares = field(default_factory=Spares)
    extend: float = 0.0  # a repeat sweep: each copy caught keeps it going this long
    longest: float = 0.0  # ... but never past this time
    rule: str = NUKE_RULE
    rule_hash: str = ""
    detail: str = ""
    reason: str | None = None
    by: str | None = None
    incident: int | None = None
    acted: set[str] = field(default_factory=set)
    full: bool = False  # MOST_VIEWERS reached: said once

    def ended(self, t: float) -> bool:
        return t > self.until

    def watches(self, streamer: str, room: str) -> bool:
        if self.room is not None:
            return room == self.room
        return streamer.casefold() == self.streamer.casefold()

    def take(self, said: Said, room: str, why: str | None = None) -> Target | None:
        """``said``'s viewer as a target, unless spared, reached before, or no match."""
        if said.user_id in self.acted or self.spares.spared(said):
            return None
        if said.unique_id and said.unique_id.casefold() == self.streamer.casefold():
            return None  # the streamer's own account (modbot speaks as it)
        if why is None:
            why = self.match(said)
            if why is None:
                return None
        if len(self.acted) >= MOST_VIEWERS:
            self.full = True
            return None
        self.acted.add(said.user_id)
        return Target(said, why, room)

    def offer(self, said: Said, streamer: str, room: str) -> Target | None:
        """A new comment: a target if this sweep reaches it (and then it goes on longer)."""
        if self.ended(said.t) or not self.watches(streamer, room):
            return None
        target = self.take(said, room)
        if target is not None and self.extend:
            self.until = min(max(self.until, said.t + self.extend), self.longest)
        return target

    def decision(self, target: Target) -> Decision:
        """The decision of one target, as a rule's is (the rule's id, or ``nuke``)."""
        said = target.said
        incident = f"incident #{self.incident}" if self.incident is not None else "incident"
        detail = f"{self.detail}: {target.why}" if self.detail else target.why
        return Decision(
            rule=self.rule,
            rule_hash=self.rule_hash,
            action=self.then.action,
            mode="enforce",
            detail=f"{incident}; {detail}",
            user_id=said.user_id,
            unique_id=said.unique_id,
            duration_s=self.then.duration_s if self.then.action == "mute" else None,
        )


def select(sweep: Sweep, recent: Iterable[tuple[str, Iterable[Said]]]) -> list[Target]:
    """The targets among comments already said: ``(room, comments newest first)`` pairs;
    each viewer once (for their newest matching comment)."""
    found: list[Target] = []
    for room, comments in recent:
        for said in comments:
            target = sweep.take(said, room)
            if target is not None:
                found.append(target)
    return found
