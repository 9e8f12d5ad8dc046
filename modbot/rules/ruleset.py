"""What a compiled ruleset is (pure): rules ready to evaluate, their index, the matchers.

``compile.py`` builds these from rule files; the engine reads them. Everything here is
frozen once built, so a ruleset can be swapped in whole on reload.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from modbot.rules import conditions as c
from modbot.rules.schema import (
    ActionSpec,
    Template,
)
from modbot.rules.text import LEVELS, Level, Matcher, Reader


@dataclass(frozen=True, slots=True)
class Window:
    """``rate`` or ``repeat``: count events in a sliding window per user or room."""

    kind: Literal["rate", "repeat"]
    count: int
    within: float
    per: Literal["user", "room"]
    similarity: float = 1.0


@dataclass(frozen=True, slots=True)
class Escalation:
    """Strikes per user: the Nth strike within ``window`` takes ``steps[N-1]``."""

    window: float
    steps: tuple[ActionSpec, ...]

    def step(self, strike: int) -> ActionSpec:
        return self.steps[min(strike, len(self.steps)) - 1]


@dataclass(frozen=True, slots=True)
class Exempt:
    """Who a rule never acts on."""

    roles: frozenset[str]
    ids: frozenset[str]  # unique_ids (folded) and user_ids from @lists


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule, ready to evaluate."""

    id: str
    description: str
    file: str
    line: int
    content_hash: str
    on: frozenset[str]
    condition: c.Predicate
    window: Window | None
    actions: tuple[ActionSpec, ...]
    escalate: Escalation | None
    warn: Template | None
    mode: Literal["enforce", "observe"]
    cooldown: float | None
    cooldown_per: Literal["user", "room"]
    exempt: Exempt
    priority: int
    normalize: Level
    order: int

    def action_kinds(self) -> set[str]:
        """Every action this rule can take (escalation steps included)."""
        kinds: set[str] = {a.kind for a in self.actions}
        if self.escalate:
            kinds.update(a.kind for a in self.escalate.steps)
        return kinds


TermSource = tuple[c.Field, Level]


@dataclass(frozen=True)
class RuleIndex:
    """Which rules an event can possibly fire, so rule count does not cost per event.

    A rule whose condition needs one of a set of list terms (``text.words`` at the top
    of ``when``, or ANDed with other keys) is only looked at when the matcher found one
    of its terms; every other rule is looked at for each event of a kind it is ``on``.
    Positions refer to ``CompiledRuleset.rules`` (so priority order is the sort order).
    """

    by_kind: Mapping[str, tuple[int, ...]]
    by_term: Mapping[TermSource, Mapping[int, tuple[int, ...]]]

    @classmethod
    def build(cls, rules: Sequence[CompiledRule]) -> RuleIndex:
        by_kind: dict[str, list[int]] = {}
        by_term: dict[TermSource, dict[int, list[int]]] = {}
        for position, rule in enumerate(rules):
            needed = required_terms(rule.condition)
            if needed is None:
                for kind in rule.on:
                    by_kind.setdefault(kind, []).append(position)
                continue
            table = by_term.setdefault((needed.which, needed.level), {})
            for term_id in needed.term_ids:
                table.setdefault(term_id, []).append(position)
        return cls(
            {k: tuple(v) for k, v in by_kind.items()},
            {src: {t: tuple(v) for t, v in table.items()} for src, table in by_term.items()},
        )


def required_terms(condition: c.Predicate) -> c.Terms | None:
    """A term set the condition cannot hold without (at least one term must be found)."""
    if isinstance(condition, c.Terms):
        return condition
    if isinstance(condition, c.AllOf):
        for part in condition.parts:
            found = required_terms(part)
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class CompiledRuleset:
    """All rules of a rules directory, sorted by priority (higher first)."""

    rules: tuple[CompiledRule, ...]
    matchers: Mapping[Level, Matcher]
    files: tuple[str, ...]
    uses_is_new: bool = False
    uses_comment_rate: bool = False
    index: RuleIndex = field(default_factory=lambda: RuleIndex({}, {}))

    def actions(self) -> set[str]:
        """Every action any enforcing rule can take."""
        kinds: set[str] = set()
        for rule in self.rules:
            if rule.mode == "enforce":
                kinds |= rule.action_kinds()
        return kinds

    @property
    def reader(self) -> Reader:
        """The readings of texts this ruleset keeps (its matchers share one)."""
        return self.matchers["standard"].reader

    def rule(self, rule_id: str) -> CompiledRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def empty_ruleset() -> CompiledRuleset:
    """A ruleset without rules."""
    reader = Reader()
    matchers = {level: Matcher(level, reader) for level in LEVELS}
    for matcher in matchers.values():
        matcher.freeze()
    return CompiledRuleset((), matchers, ())
