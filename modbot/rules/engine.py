"""The rule engine: ``evaluate(event, now) -> list[Decision]`` (pure: no I/O, no clock).

For each rule, in priority order: the event kind must be one the rule is ``on``, the
user must not be exempt, the condition must hold, then the ``rate``/``repeat`` window
(which counts only events that passed the other conditions) must be full. A rule that
fires in its cooldown is reported as suppressed. Escalation adds a strike and takes the
step for it. Finally the severity merge keeps one enforcement per user per event (ban
> longer mute > shorter mute) and one copy of each reply; every firing rule is still
in the result, the others marked ``suppressed``.

The streamer's own events (``is_owner``) never produce a decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal, NamedTuple

from modbot.actions.table import describe, format_duration, kind_of, severity
from modbot.events import Event, User
from modbot.rules.compile import CompiledRule, CompiledRuleset, empty_ruleset, load_ruleset
from modbot.rules.conditions import EvalContext
from modbot.rules.diagnostics import Diagnostic, errors
from modbot.rules.schema import ActionSpec
from modbot.rules.speech import SpeechCheck
from modbot.rules.state import KEY_CHARS, EngineState

# The copy-paste check knows a text by its first KEY_CHARS normalised characters: they
# come from (about) as many characters of the text, so a 10,000-character comment is
# not normalised whole to be cut afterwards (four times the key covers the separators
# and marks that normalisation drops).
KEY_SOURCE = 4 * KEY_CHARS

Mode = Literal["enforce", "observe"]


class Decision(NamedTuple):
    """What one rule decided for one event, with why.

    A named tuple, not a frozen dataclass: a raid makes two or three decisions per
    comment, and a frozen dataclass sets each of its 15 fields through
    ``object.__setattr__`` (2.1 us a decision in the compiled build, against 0.6 us).
    """

    rule: str
    rule_hash: str
    action: str  # a name in the action table (modbot.actions.table)
    mode: Mode
    detail: str
    user_id: str
    unique_id: str
    duration_s: float | None = None  # mute; None with action mute means forever
    text: str | None = None  # reply and warn: the rendered message
    enabled: bool | None = None
    for_s: float | None = None
    strike: int | None = None
    suppressed: str | None = None  # why it will not be carried out
    priority: int = 0
    everywhere: bool = False  # ban: remembered for every configured streamer

    @property
    def enforced(self) -> bool:
        """Whether this decision is to be carried out (not observe, not suppressed)."""
        return self.mode == "enforce" and self.suppressed is None

    def facts(self) -> dict[str, object]:
        """The action's own facts, under the audit row's names (``describe`` reads them)."""
        return {
            "duration_s": self.duration_s,
            "text": self.text,
            "enabled": self.enabled,
            "for_s": self.for_s,
        }

    def describe(self) -> str:
        """A short human form: ``mute 10m``, ``ban``, ``reply '...'``."""
        return describe(self.action, self.facts())

    def logged(self) -> dict[str, object]:
        """The decision for its log line: every fact that is set, under its own name
        (the names of the audit row), and its short form as ``described``."""
        found: dict[str, object] = {}
        for name in _DECISION_FIELDS:
            value = getattr(self, name)
            if value is not None:
                found[name] = value
        found["described"] = self.describe()
        return found


# The names of a decision's facts (the daemon logs every decision, 2,000 a second
# under a raid).
_DECISION_FIELDS = Decision._fields


class EngineStatistics(NamedTuple):
    """Counters since the engine started."""

    events: int
    decisions: int
    rules: int
    state_entries: int


class Engine:
    """Evaluates events against the current ruleset; swaps rulesets atomically."""

    def __init__(
        self, ruleset: CompiledRuleset | None = None, state: EngineState | None = None
    ) -> None:
        self._ruleset = ruleset or empty_ruleset()
        self.state = state or EngineState()
        self._events = 0
        self._decisions = 0
        self._speech: SpeechCheck | None = None

    @property
    def ruleset(self) -> CompiledRuleset:
        return self._ruleset

    def swap(self, ruleset: CompiledRuleset) -> None:
        """Use ``ruleset`` from the next event on; state of removed rules is dropped."""
        self._ruleset = ruleset
        self.state.forget_rules({r.id for r in ruleset.rules})

    def reload(
        self, paths: Sequence[Path], *, granted_scopes: frozenset[str] | None = None
    ) -> list[Diagnostic]:
        """Compile the rules at ``paths`` and swap them in only if they check.

        Returns every diagnostic; when any is an error the old rules stay in use. Reads
        files: call it in a worker thread from async code.
        """
        ruleset, diagnostics = load_ruleset(paths, granted_scopes=granted_scopes)
        if ruleset is not None and not errors(diagnostics):
            self.swap(ruleset)
        return diagnostics

    def statistics(self) -> EngineStatistics:
        return EngineStatistics(
            self._events, self._decisions, len(self._ruleset.rules), self.state.entries()
        )

    def speech_problem(self, text: str, fields: Sequence[str] = ()) -> str | None:
        """Why the bot must not say ``text`` under the current rules (None: it may);
        ``fields`` are the viewer values a template put into it."""
        ruleset = self._ruleset
        speech = self._speech
        if speech is None or speech.ruleset is not ruleset:
            speech = self._speech = SpeechCheck(ruleset)
        return speech.problem(text, fields)

    def evaluate(self, event: Event, now: datetime) -> list[Decision]:
        """The decisions for one event at time ``now``."""
        ruleset = self._ruleset
        t = now.timestamp()
        self._events += 1
        user = event.user
        state = self.state
        if user is not None and ruleset.uses_is_new:
            state.see(event.streamer, user.user_id, t)
        room = event.room_id or event.streamer
        if event.kind == "comment" and ruleset.uses_comment_rate:
            state.comment(room, t)
        state.maybe_sweep(t)
        if user is None or user.is_owner:
            return []
        ctx = EvalContext(event, t, ruleset.matchers, state)
        reader = ruleset.reader
        decisions: list[Decision] = []
        for rule in _candidates(ruleset, ctx):
            if event.kind not in rule.on or _exempt(rule, user):
                continue
            reason = rule.condition(ctx)
            if reason is None:
                continue
            window = rule.window
            if window is not None:
                key = room if window.per == "room" else user.user_id
                if window.kind == "rate":
                    seen = state.rate(rule.id, key, t, window.within, window.count)
                else:
                    seen = state.repeat(
                        rule.id,
                        key,
                        reader.similarity_key(event.text[:KEY_SOURCE]) or event.text[:KEY_SOURCE],
                        t,
                        window.within,
                        window.similarity,
                        window.count,
                    )
                if seen < window.count:
                    continue
                what = "events" if window.kind == "rate" else "near-identical texts"
                found = f"{seen} {what} in {format_duration(window.within)} per {window.per}"
                reason = found if reason == "always" else f"{reason}; {found}"
            decisions.extend(self._fire(rule, event, user, reason, t, room))
        merged = merge(decisions)
        self._decisions += len(merged)
        return merged

    def _fire(
        self, rule: CompiledRule, event: Event, user: User, reason: str, t: float, room: str
    ) -> list[Decision]:
        state = self.state
        cooldown_key = room if rule.cooldown_per == "room" else user.user_id
        suppressed = None
        if rule.cooldown and state.in_cooldown(rule.id, cooldown_key, t):
            suppressed = "cooldown"
        actions: list[ActionSpec] = list(rule.actions)
        strike = None
        if rule.escalate is not None and suppressed is None:
            strike = state.strike(rule.id, user.user_id, t, rule.escalate.window)
            actions.append(rule.escalate.step(strike))
            reason = f"{reason}; strike {strike} in {format_duration(rule.escalate.window)}"
        elif rule.escalate is not None:
            actions.append(rule.escalate.step(1))
        if suppressed is None and rule.cooldown:
            state.start_cooldown(rule.id, cooldown_key, t + rule.cooldown)
        fields: dict[str, str] | None = None  # the template fields, made if a text needs them
        out = []
        for action in actions:
            text = None
            held = suppressed
            template = action.template
            if template is None and (kind := kind_of(action.kind)) is not None and kind.chat:
                template = rule.warn  # a chat action without its own text says the rule's warning
            if template is not None:
                fields = fields or _fields(rule, event, user, actions)
                text = template.render(fields)
                if held is None:
                    # What a viewer's fields make the bot say is checked with them in
                    # hand (the executor checks every message again, by its text).
                    unsaid = self.speech_problem(text, template.filled(fields))
                    held = None if unsaid is None else f"not said: {unsaid}"
            out.append(
                Decision(
                    rule=rule.id,
                    rule_hash=rule.content_hash,
                    action=action.kind,
                    mode=rule.mode,
                    detail=reason,
                    user_id=user.user_id,
                    unique_id=user.unique_id,
                    duration_s=action.duration_s,
                    text=text,
                    enabled=action.enabled,
                    for_s=action.for_s,
                    strike=strike,
                    everywhere=action.everywhere,
                    suppressed=held,
                    priority=rule.priority,
                )
            )
        return out


def _fields(
    rule: CompiledRule, event: Event, user: User, actions: list[ActionSpec]
) -> dict[str, str]:
    """What reply and warn templates may say (schema.TEMPLATE_FIELDS)."""
    mute = next((a for a in actions if _takes(a.kind) == "duration"), None)
    return {
        "user.unique_id": user.unique_id,
        "user.nickname": user.nickname,
        "rule.id": rule.id,
        "duration": format_duration(mute.duration_s) if mute else "",
        "streamer": event.streamer,
    }


def _takes(action: str) -> str:
    kind = kind_of(action)
    return "nothing" if kind is None else kind.takes


def _candidates(ruleset: CompiledRuleset, ctx: EvalContext) -> list[CompiledRule]:
    """The rules that can fire on this event, in priority order (see ``RuleIndex``)."""
    index = ruleset.index
    positions = list(index.by_kind.get(ctx.event.kind, ()))
    for (which, level), table in index.by_term.items():
        if ctx.text(which):
            for hit in ctx.hits(which, level):
                positions.extend(table.get(hit.term_id, ()))
    rules = ruleset.rules
    return [rules[i] for i in sorted(set(positions))]


def _exempt(rule: CompiledRule, user: User) -> bool:
    roles = rule.exempt.roles
    if (
        (user.is_owner and "owner" in roles)
        or (user.is_moderator and "moderator" in roles)
        or (user.is_subscriber and "subscriber" in roles)
        or (user.is_follower and "follower" in roles)
        or (user.is_friend and "friend" in roles)
    ):
        return True
    ids = rule.exempt.ids
    return bool(ids) and (user.unique_id.casefold() in ids or user.user_id in ids)


def merge(decisions: Sequence[Decision]) -> list[Decision]:
    """One enforcement per user per event, replies and comment toggles not repeated.

    The most severe enforcing action wins (the action table's ``severity``: ban >
    longer mute > shorter mute; the earlier, higher-priority rule on a tie); the
    others stay in the list, marked ``suppressed``. An action the table says is not
    repeated (a reply, a comments toggle) is kept once per event. Observe-mode and
    already suppressed decisions are left as they are.
    """
    live = [d for d in decisions if d.mode == "enforce" and d.suppressed is None]
    enforcements = [d for d in live if severity(d.action, d.duration_s)[0] > 0]
    winner = None
    if enforcements:
        winner = max(
            enforcements,
            key=lambda d: severity(d.action, d.duration_s),
        )
    seen: set[tuple[object, ...]] = set()
    out: list[Decision] = []
    for d in decisions:
        kind = kind_of(d.action)
        if d.mode != "enforce" or d.suppressed is not None or kind is None:
            out.append(d)
        elif kind.severity > 0 and winner is not None and d is not winner:
            why = f"superseded by {winner.describe()} from rule {winner.rule}"
            out.append(d._replace(suppressed=why))
        elif kind.repeated:
            # Chat messages are one thing whatever says them: a reply and a warn alike.
            key = ("chat" if kind.chat else d.action, d.text or "", *_toggle(d))
            if key in seen:
                out.append(d._replace(suppressed=kind.repeated))
            else:
                seen.add(key)
                out.append(d)
        else:
            out.append(d)
    return out


def _toggle(d: Decision) -> tuple[bool | None, float | None]:
    return (d.enabled, d.for_s)
