"""What the bot may say: the rules' own text checks, applied to its outgoing messages (pure).

A reply or warning speaks from the streamer's account, and templates put viewer text
into it (``{user.nickname}`` is any 64 characters the viewer chose). So before any chat
message is sent, whether a rule's reply, a warning or one sent by hand, it must pass
the checks the rules apply to viewers: a message that holds a link, or a term or pattern
that an enforcing rule acts on (``text.words``, ``text.contains``, ``text.regex`` and
the rest, on the comment or the nickname), is not said. The checks are the compiled
rules' own predicates, run on the message as if a viewer had written it, so the bot
never says what it would punish.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from modbot.events import Event
from modbot.inert import is_blank
from modbot.rules import conditions as c
from modbot.rules.text import Level, find_links

if TYPE_CHECKING:
    from modbot.rules.compile import CompiledRuleset

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KEPT = 1024  # messages whose answer is kept (first in, first out)
_UNKNOWN = object()


class _NoRates:
    """Speech has no room state: rate conditions are not text checks."""

    def comment_rate(self, room: str, now: float) -> float:  # noqa: ARG002 (the protocol's)
        return 0.0

    def is_new(self, streamer: str, user_id: str) -> bool:  # noqa: ARG002 (the protocol's)
        return False


def text_checks(condition: c.Predicate) -> Iterator[c.Predicate]:
    """The checks of a rule's condition that look at text (not under ``not:``)."""
    if isinstance(condition, c.AllOf | c.AnyOf):
        for part in condition.parts:
            yield from text_checks(part)
    elif isinstance(condition, c.Terms | c.Regex | c.Links):
        yield condition


def as_speech(check: c.Predicate) -> c.Predicate | None:
    """A rule's text check as it applies to a message of the bot's (None: links, which
    every message is checked for anyway).

    Whatever field the rule looks at, the message is the text; a term the rule matches
    as a whole comment (``equals``) or at its start or end counts anywhere in the
    message as a word (``Bye {user.nickname}`` must not say a listed nickname), and
    ``contains`` stays ``contains``.
    """
    if isinstance(check, c.Terms):
        mode: c.TermMode = "contains" if check.mode == "contains" else "words"
        return c.Terms(check.label, "text", check.level, mode, check.term_ids, check.names)
    if isinstance(check, c.Regex):
        return c.Regex(check.label, "text", check.pattern, check.source)
    return None


class SpeechCheck:
    """The text checks of a ruleset's enforcing rules, for the bot's own messages."""

    def __init__(self, ruleset: CompiledRuleset) -> None:
        self.ruleset = ruleset
        self._kept: dict[tuple[str, tuple[str, ...]], str | None] = {}
        self.matchers = ruleset.matchers
        self.checks = tuple(
            (rule.id, speech)
            for rule in ruleset.rules
            if rule.mode == "enforce"
            for check in text_checks(rule.condition)
            if (speech := as_speech(check)) is not None
        )
        # A term check can only trip on a hit of one of its terms: the checks by term
        # (their places in ``checks``), so a message is put to those its hits name and
        # to the others (regexes), not to every term check of every rule (with 500 word
        # rules, a reply with a nickname in it cost about 1M instructions compiled).
        self._by_term: dict[tuple[Level, int], list[int]] = {}
        self._always: list[int] = []
        for place, (_rule_id, check) in enumerate(self.checks):
            if isinstance(check, c.Terms):
                for term_id in check.term_ids:
                    self._by_term.setdefault((check.level, term_id), []).append(place)
            else:
                self._always.append(place)
        self._levels = sorted({level for level, _term in self._by_term})

    def problem(self, text: str, fields: Iterable[str] = ()) -> str | None:
        """Why ``text`` must not be said (None: it may be).

        ``fields`` are the viewer values a template put into it: each is checked on its
        own too, so a pattern anchored to a whole comment (``^...$``) is not hidden by
        the words around it. The answers for the last ``KEPT`` messages are kept: most
        replies repeat ("Chat paused for 2 minutes"), and a check runs every text check
        of every enforcing rule (about 0.4 ms in the pure build).
        """
        key = (text, tuple(fields))
        found = self._kept.get(key, _UNKNOWN)
        if found is _UNKNOWN:
            found = self._kept[key] = self._problem(key[0], key[1])
            if len(self._kept) > KEPT:
                del self._kept[next(iter(self._kept))]
        return found if isinstance(found, str) else None

    def _problem(self, text: str, fields: tuple[str, ...]) -> str | None:
        if is_blank(text):
            return "the message is empty (a template's fields rendered blank)"
        links = find_links(text)
        if links:
            return f"the message holds a link ({links[0]})"
        for part in (text, *fields):
            if not part:
                continue
            ctx = c.EvalContext(_said(part), 0.0, self.matchers, _NoRates())
            for place in self._candidates(ctx):
                rule_id, check = self.checks[place]
                reason = check(ctx)
                if reason is not None:
                    return f"the message would trip rule {rule_id!r} ({reason})"
        return None

    def _candidates(self, ctx: c.EvalContext) -> list[int]:
        """The places of the checks that may trip on this message, in order: those of
        the terms it holds, and every check that is not of terms."""
        places = set(self._always)
        by_term = self._by_term
        for level in self._levels:
            for hit in ctx.hits("text", level):
                places.update(by_term.get((level, hit.term_id), ()))
        return sorted(places)


def _said(text: str) -> Event:
    return Event("comment", _EPOCH, "", text=text, extra={"said": True})
