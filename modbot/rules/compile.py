"""Rule files to a frozen, checked ``CompiledRuleset`` (pure but for reading list files).

Everything is compiled at load: conditions become predicates, RE2 patterns are
compiled, every list term of every rule goes into one matcher per normalisation level,
durations become seconds. Every problem is collected with its position, so one run of
``modbot rules check`` reports all of them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import re2

from modbot.euler.scopes import ACTION_SCOPES
from modbot.inert import is_blank
from modbot.rules import conditions as c
from modbot.rules.diagnostics import Diagnostic, Pos, did_you_mean, errors
from modbot.rules.loader import (
    MAX_LIST_BYTES,
    FileRefused,
    LoadedFile,
    YList,
    YMap,
    one_line,
    parse,
    read_file,
    read_list_file,
    rule_files,
)
from modbot.rules.schema import (
    CONDITION_KEYS,
    DEFAULT_KEYS,
    FILE_KEYS,
    MODES,
    NORMALIZE,
    ROLES,
    RULE_EVENTS,
    RULE_ID,
    RULE_KEYS,
    STATE_KEYS,
    VERSION,
    ActionSpec,
    SchemaProblem,
    Template,
    parse_action,
    parse_comparison,
    parse_duration,
    parse_template,
)
from modbot.rules.speech import SpeechCheck
from modbot.rules.text import LEVELS, Level, Matcher

DEFAULT_EXEMPT = ("owner", "moderator")
# What the terms of a ruleset may cost. Compiling a term costs time and memory (its
# normal forms, its plural, the spelling without spaces, its place in the automaton):
# measured here, 50,000 two-word terms took 6.2 s of CPU and 208 MB peak, 100,000 took
# 12.7 s and 375 MB, 440,000 (4 MiB) 43 s and 1.09 GB, past the daemon's 30 s reload
# limit and its unit's MemoryMax. These are counted as lists are read and before each
# condition's terms go into a matcher, so a ruleset over them is refused before the
# work. A list used at two normalize levels goes into two matchers and counts twice.
MAX_TERMS = 25_000  # all terms together (2-3 s, about 120 MB)
MAX_TERM_TEXT = 1024 * 1024  # their characters together (long terms cost by length)
# pyahocorasick walks its trie recursively: one term of 650,000 characters crashed the
# interpreter (a segmentation fault when the automaton is freed).
MAX_TERM_LENGTH = 1_000
MAX_REGEX = 4096


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

    def rule(self, rule_id: str) -> CompiledRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def empty_ruleset() -> CompiledRuleset:
    """A ruleset without rules."""
    matchers = {level: Matcher(level) for level in LEVELS}
    for matcher in matchers.values():
        matcher.freeze()
    return CompiledRuleset((), matchers, ())


# --- entry points ---------------------------------------------------------------------


def load_ruleset(
    paths: Sequence[Path], *, granted_scopes: frozenset[str] | None = None
) -> tuple[CompiledRuleset | None, list[Diagnostic]]:
    """Read, check and compile every rule file under ``paths``.

    Returns the ruleset (None when there is any error) and every diagnostic, warnings
    included. ``granted_scopes`` (when known) adds a warning for each action the
    current OAuth grant does not allow. An unexpected exception while compiling is an
    error diagnostic too (with its class and message), never raised.
    """
    files, problems = rule_files(list(paths))
    loaded = [read_file(p) for p in files]
    where = str(files[0] if files else paths[0] if paths else ".")
    return _compile(loaded, granted_scopes, problems, where)


def compile_texts(
    texts: Mapping[str, str], *, granted_scopes: frozenset[str] | None = None
) -> tuple[CompiledRuleset | None, list[Diagnostic]]:
    """Compile rule files given as ``{name: yaml text}`` (tests, ``rules test``)."""
    loaded = []
    for name, text in texts.items():
        data, problems = parse(text, name)
        loaded.append(LoadedFile(Path(name), data, problems))
    return _compile(loaded, granted_scopes, [], next(iter(texts), "."))


def _compile(
    loaded: list[LoadedFile],
    granted_scopes: frozenset[str] | None,
    problems: list[Diagnostic],
    where: str,
) -> tuple[CompiledRuleset | None, list[Diagnostic]]:
    compiler = _Compiler(granted_scopes)
    try:
        ruleset = compiler.compile(loaded)
    except Exception as exc:  # noqa: BLE001 (a bug of the compiler: refused rules)
        message = f"the rules could not be compiled: {one_line(exc)}"
        return None, sorted({*problems, Diagnostic(where, 1, 1, "error", message)})
    found = [d for f in loaded for d in f.diagnostics]
    # A value the loader refused (a number too long, not finite) is None to the
    # compiler: what it says about that None at the same place would only repeat it.
    refused = {(d.file, d.line, d.col) for d in errors(found)}
    later = [d for d in compiler.diagnostics if (d.file, d.line, d.col) not in refused]
    diagnostics = sorted(set(problems + later + found))
    if errors(diagnostics):
        return None, diagnostics
    return ruleset, diagnostics


# --- the compiler ---------------------------------------------------------------------


@dataclass
class _ListDef:
    terms: list[str]
    pos: Pos
    text: int = 0  # characters of all its terms


@dataclass
class _RuleContext:
    rule_id: str
    on: frozenset[str]
    level: Level
    window: Window | None = None
    uses_is_new: bool = False
    uses_comment_rate: bool = False
    per_room: bool = False


@dataclass
class _Compiler:
    granted_scopes: frozenset[str] | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    lists: dict[str, _ListDef] = field(default_factory=dict)
    broken_lists: set[str] = field(default_factory=set)
    list_bytes: int = 0  # of the list files read so far
    list_terms: int = 0  # terms of the lists defined so far
    list_text: int = 0
    entries: int = 0  # terms given to the matchers (a list once per level it is used at)
    entry_text: int = 0
    list_ids: dict[tuple[Level, str], frozenset[int]] = field(default_factory=dict)
    over_budget: bool = False  # the lists broke a limit on terms: compile no terms
    matchers: dict[Level, Matcher] = field(
        default_factory=lambda: {lv: Matcher(lv) for lv in LEVELS}
    )
    term_names: dict[Level, dict[int, str]] = field(
        default_factory=lambda: {lv: {} for lv in LEVELS}
    )
    uses_is_new: bool = False
    uses_comment_rate: bool = False

    def error(self, pos: Pos, message: str) -> None:
        self.diagnostics.append(Diagnostic.at(pos, message))

    def warning(self, pos: Pos, message: str) -> None:
        self.diagnostics.append(Diagnostic.at(pos, message, "warning"))

    # --- files -----------------------------------------------------------------------

    def compile(self, loaded: Iterable[LoadedFile]) -> CompiledRuleset:
        files = [f for f in loaded if f.data is not None]
        tops: list[tuple[LoadedFile, YMap]] = []
        for f in files:
            top = f.data
            if not isinstance(top, YMap):
                self.diagnostics.append(
                    Diagnostic(
                        str(f.path),
                        1,
                        1,
                        "error",
                        "a rule file is a mapping with version and rules",
                    )
                )
                continue
            self._check_keys(top, FILE_KEYS, "file")
            version = top.get("version")
            if "version" not in top:
                self.error(top.pos, f"missing key 'version': add `version: {VERSION}` at the top")
            elif version != VERSION:
                self.error(top.where("version"), f"version: expected {VERSION}, got {version!r}")
            tops.append((f, top))
        for f, top in tops:
            self._collect_lists(f.path, top)
        rules: list[CompiledRule] = []
        seen: dict[str, Pos] = {}
        order = 0
        for _f, top in tops:
            defaults = self._defaults(top)
            raw_rules = top.get("rules")
            if raw_rules is None:
                continue
            if not isinstance(raw_rules, YList):
                self.error(top.where("rules"), "rules: expected a list of rules")
                continue
            for index, raw in enumerate(raw_rules):
                where = raw_rules.where(index)
                if not isinstance(raw, YMap):
                    self.error(where, "each rule is a mapping with id, on, when and then")
                    continue
                rule = self._rule(raw, defaults, order)
                order += 1
                rule_id = raw.get("id")
                if isinstance(rule_id, str):
                    if rule_id in seen:
                        first = seen[rule_id]
                        self.error(
                            raw.where("id"),
                            f"duplicate rule id {rule_id!r} (first in {first.file} line {first.line})",
                        )
                    else:
                        seen[rule_id] = raw.where("id")
                if rule is not None:
                    rules.append(rule)
        for matcher in self.matchers.values():
            matcher.freeze()
        rules.sort(key=lambda r: (-r.priority, r.order))
        ruleset = CompiledRuleset(
            rules=tuple(rules),
            matchers=self.matchers,
            files=tuple(str(f.path) for f, _ in tops),
            uses_is_new=self.uses_is_new,
            uses_comment_rate=self.uses_comment_rate,
            index=RuleIndex.build(rules),
        )
        self._said_checks(ruleset)
        return ruleset

    def _check_keys(self, node: YMap, known: Sequence[str], what: str) -> None:
        for key in node:
            if key not in known:
                self.error(
                    node.key_pos.get(key, node.pos),
                    f"unknown {what} key {key!r}{did_you_mean(key, known)}; expected one of "
                    + ", ".join(known),
                )

    def _collect_lists(self, path: Path, top: YMap) -> None:
        raw = top.get("lists")
        if raw is None:
            return
        if not isinstance(raw, YMap):
            self.error(
                top.where("lists"), "lists: expected a mapping of name: [terms] or {file: PATH}"
            )
            return
        for name, value in raw.items():
            where = raw.where(name)
            if name in self.lists:
                first = self.lists[name].pos
                self.error(
                    where,
                    f"list {name!r} is defined twice (first in {first.file} line {first.line})",
                )
                continue
            terms = self._list_terms(path, name, value, where)
            if terms is not None:
                terms = self._list_budget(name, terms, where)
            if terms is not None:
                self.lists[name] = _ListDef(terms, where, sum(map(len, terms)))
            else:
                self.broken_lists.add(name)  # reported once here, not at every use

    def _list_budget(self, name: str, terms: list[str], where: Pos) -> list[str] | None:
        """``terms``, or None (and an error) when they break a limit on terms."""
        long = next((i for i, t in enumerate(terms) if len(t) > MAX_TERM_LENGTH), None)
        if long is not None:
            self.error(
                where,
                f"list {name!r}: term {long + 1} has {len(terms[long])} characters;"
                f" a term may have at most {MAX_TERM_LENGTH}",
            )
            return None
        self.list_terms += len(terms)
        self.list_text += sum(map(len, terms))
        self.over_budget = self.list_terms > MAX_TERMS or self.list_text > MAX_TERM_TEXT
        if self.list_terms > MAX_TERMS:
            self.error(
                where,
                f"list {name!r}: the lists hold {self.list_terms} terms with this one;"
                f" all lists together may hold at most {MAX_TERMS} terms",
            )
            return None
        if self.list_text > MAX_TERM_TEXT:
            self.error(
                where,
                f"list {name!r}: the lists hold {self.list_text} characters of terms with"
                f" this one; all lists together may hold at most {MAX_TERM_TEXT}",
            )
            return None
        return terms

    def _list_terms(self, path: Path, name: str, value: Any, where: Pos) -> list[str] | None:
        if isinstance(value, YList):
            bad = [
                i
                for i, t in enumerate(value)
                if not isinstance(t, str | int) or isinstance(t, bool)
            ]
            for i in bad:
                self.error(value.where(i), f"list {name!r}: each term must be text")
            return [str(t) for t in value if isinstance(t, str | int) and not isinstance(t, bool)]
        if isinstance(value, YMap) and set(value) == {"file"} and isinstance(value["file"], str):
            target = path.parent / value["file"]
            try:
                terms, size = read_list_file(
                    target, path.parent, room=MAX_LIST_BYTES - self.list_bytes
                )
            except FileRefused as exc:
                self.error(
                    value.where("file"), f"list {name!r}: not reading {value['file']!r}: {exc}"
                )
                return None
            except FileNotFoundError:
                self.error(
                    value.where("file"),
                    f"list {name!r}: the file {value['file']!r} does not exist (looked for {target})",
                )
                return None
            except (OSError, UnicodeDecodeError) as exc:
                self.error(
                    value.where("file"), f"list {name!r}: cannot read {value['file']!r}: {exc}"
                )
                return None
            self.list_bytes += size
            return terms
        self.error(where, f"list {name!r}: expected a list of terms or {{file: PATH}}")
        return None

    def _defaults(self, top: YMap) -> YMap | None:
        raw = top.get("defaults")
        if raw is None:
            return None
        if not isinstance(raw, YMap):
            self.error(top.where("defaults"), "defaults: expected a mapping")
            return None
        self._check_keys(raw, DEFAULT_KEYS, "defaults")
        return raw

    # --- rules -----------------------------------------------------------------------

    def _rule(self, raw: YMap, defaults: YMap | None, order: int) -> CompiledRule | None:
        before = len(errors(self.diagnostics))
        self._check_keys(raw, RULE_KEYS, "rule")

        def get(key: str) -> tuple[Any, Pos] | None:
            if key in raw:
                return raw[key], raw.where(key)
            if defaults is not None and key in defaults:
                return defaults[key], defaults.where(key)
            return None

        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
            where = raw.where("id") if "id" in raw else raw.pos
            got = "missing" if "id" not in raw else repr(rule_id)
            self.error(
                where,
                f"id: expected lower-case letters, digits and '-' (like scam-links), got {got}",
            )
            rule_id = f"#{order + 1}"  # people count rules from 1
        description = raw.get("description", "")
        if not isinstance(description, str):
            self.error(raw.where("description"), "description: expected text")
            description = ""
        on = self._on(raw)
        level = self._level(get("normalize"))
        ctx = _RuleContext(rule_id, on, level)
        condition: c.Predicate = c.always
        if "when" in raw:
            when = raw["when"]
            if isinstance(when, YMap):
                condition = self._mapping(when, ctx, top=True)
            else:
                self.error(raw.where("when"), "when: expected a mapping of conditions")
        actions = self._actions(raw)
        escalate = self._escalate(raw)
        warn = None
        if "warn" in raw:
            try:
                warn = parse_template(raw["warn"])
            except SchemaProblem as exc:
                self.error(raw.where("warn"), f"warn: {exc}")
        if (
            escalate
            and any(s.kind == "warn" for s in escalate.steps)
            and warn is None
            and "warn" not in raw
        ):
            self.error(
                raw.where("escalate"), "escalate has a warn step, so the rule needs warn: TEXT"
            )
        self._template_checks(raw, actions, escalate, warn)
        if not actions and escalate is None and ("then" not in raw) and "escalate" not in raw:
            self.error(raw.pos, f"rule {rule_id!r} has no then (actions) and no escalate")
        mode = self._choice(get("mode"), "mode", MODES, "enforce")
        cooldown = None
        got_cooldown = get("cooldown")
        if got_cooldown is not None:
            try:
                cooldown = parse_duration(got_cooldown[0])
            except SchemaProblem as exc:
                self.error(got_cooldown[1], f"cooldown: {exc}")
        priority = 0
        got_priority = get("priority")
        if got_priority is not None:
            value = got_priority[0]
            if isinstance(value, int) and not isinstance(value, bool):
                priority = value
            else:
                self.error(got_priority[1], f"priority: expected a whole number, got {value!r}")
        exempt = self._exempt(get("exempt"))
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            self.error(raw.where("enabled"), "enabled: expected true or false")
        room_actions = any(a.kind == "comments" for a in actions) or ctx.per_room
        if self.granted_scopes is not None and mode == "enforce":
            self._scope_warnings(raw, rule_id, actions, escalate)
        if len(errors(self.diagnostics)) > before or enabled is False:
            return None
        self.uses_is_new |= ctx.uses_is_new
        self.uses_comment_rate |= ctx.uses_comment_rate
        return CompiledRule(
            id=rule_id,
            description=description,
            file=raw.pos.file,
            line=raw.pos.line,
            content_hash=_content_hash(raw, defaults),
            on=on,
            condition=condition,
            window=ctx.window,
            actions=actions,
            escalate=escalate,
            warn=warn,
            mode=mode,  # type: ignore[arg-type]
            cooldown=cooldown,
            cooldown_per="room" if room_actions else "user",
            exempt=exempt,
            priority=priority,
            normalize=level,
            order=order,
        )

    def _on(self, raw: YMap) -> frozenset[str]:
        if "on" not in raw:
            self.error(
                raw.pos, f"missing key 'on' (one of {', '.join(RULE_EVENTS)}, any, or a list)"
            )
            return frozenset({"comment"})
        value = raw["on"]
        items = value if isinstance(value, list) else [value]
        kinds: set[str] = set()
        for i, item in enumerate(items):
            where = value.where(i) if isinstance(value, YList) else raw.where("on")
            if item == "any":
                kinds.update(RULE_EVENTS)
            elif isinstance(item, str) and item in RULE_EVENTS:
                kinds.add(item)
            else:
                text = str(item)
                self.error(
                    where,
                    f"on: unknown event kind {item!r}{did_you_mean(text, [*RULE_EVENTS, 'any'])}; "
                    f"expected one of {', '.join(RULE_EVENTS)} or any",
                )
        return frozenset(kinds or {"comment"})

    def _level(self, got: tuple[Any, Pos] | None) -> Level:
        if got is None:
            return "standard"
        value, where = got
        if value in NORMALIZE:
            return value  # type: ignore[no-any-return]
        self.error(
            where,
            f"normalize: expected one of {', '.join(NORMALIZE)}, got {value!r}{did_you_mean(str(value), NORMALIZE)}",
        )
        return "standard"

    def _choice(
        self, got: tuple[Any, Pos] | None, key: str, options: Sequence[str], default: str
    ) -> str:
        if got is None:
            return default
        value, where = got
        if value in options:
            return str(value)
        self.error(
            where,
            f"{key}: expected one of {', '.join(options)}, got {value!r}{did_you_mean(str(value), options)}",
        )
        return default

    def _exempt(self, got: tuple[Any, Pos] | None) -> Exempt:
        if got is None:
            return Exempt(frozenset(DEFAULT_EXEMPT), frozenset())
        value, where = got
        if not isinstance(value, list):
            self.error(
                where,
                "exempt: expected a list of roles (owner, moderator, subscriber, follower, friend) or '@list'",
            )
            return Exempt(frozenset(DEFAULT_EXEMPT), frozenset())
        roles: set[str] = set()
        ids: set[str] = set()
        for i, item in enumerate(value):
            pos = value.where(i) if isinstance(value, YList) else where
            if isinstance(item, str) and item.startswith("@"):
                terms = self._list_ref(item, pos)
                ids.update(t.strip().lstrip("@").casefold() for t in terms or [])
            elif item in ROLES:
                roles.add(item)
            else:
                self.error(
                    pos,
                    f"exempt: unknown role {item!r}{did_you_mean(str(item), ROLES)}; expected {', '.join(ROLES)} or '@list'",
                )
        return Exempt(frozenset(roles), frozenset(ids))

    def _list_ref(self, ref: str, pos: Pos) -> list[str] | None:
        name = ref[1:]
        found = self.lists.get(name)
        if found is None and name in self.broken_lists:
            return None
        if found is None:
            self.error(
                pos,
                f"undefined list {ref!r}{did_you_mean(name, self.lists)}; define it under lists:",
            )
            return None
        return found.terms

    def _template_checks(
        self,
        raw: YMap,
        actions: Sequence[ActionSpec],
        escalate: Escalation | None,
        warn: Template | None,
    ) -> None:
        """Warn about reply and warn texts that render empty, in part or whole.

        ``{duration}`` is the length of the rule's own mute (in ``then``): without one
        it is empty. A text whose written part is blank is empty whenever the viewer's
        fields are (an empty message is never sent).
        """
        steps = escalate.steps if escalate is not None else ()
        texts = [
            (raw.where("then"), "reply", a.template)
            for a in (*actions, *steps)
            if a.kind == "reply" and a.template is not None
        ]
        if warn is not None:
            texts.append((raw.where("warn"), "warn", warn))
        mutes = any(a.kind == "mute" for a in actions)
        for where, what, template in texts:
            if "duration" in template.fields and not mutes:
                self.warning(
                    where,
                    f"{what}: {{duration}} is always empty here: the rule's then has no mute",
                )
            if is_blank(template.literal):
                self.warning(
                    where,
                    f"{what}: {template.source!r} is only viewer fields; when they are blank"
                    " (or only invisible characters) the message is not sent",
                )

    def _said_checks(self, ruleset: CompiledRuleset) -> None:
        """Warn about a reply or warn text that the rules' own text checks refuse as written."""
        speech = SpeechCheck(ruleset)
        for rule in ruleset.rules:
            templates = [a.template for a in rule.actions if a.template is not None]
            if rule.escalate is not None:
                templates += [a.template for a in rule.escalate.steps if a.template is not None]
            if rule.warn is not None:
                templates.append(rule.warn)
            for template in templates:
                literal = template.literal
                problem = None if is_blank(literal) else speech.problem(literal)
                if problem is not None:
                    self.diagnostics.append(
                        Diagnostic(
                            rule.file,
                            rule.line,
                            1,
                            "warning",
                            f"rule {rule.id!r}: {template.source!r} is never sent: {problem}",
                        )
                    )

    def _actions(self, raw: YMap) -> tuple[ActionSpec, ...]:
        if "then" not in raw:
            return ()
        value = raw["then"]
        items = value if isinstance(value, list) else [value]
        out = []
        for i, item in enumerate(items):
            where = value.where(i) if isinstance(value, YList) else raw.where("then")
            try:
                out.append(parse_action(item))
            except SchemaProblem as exc:
                self.error(where, f"then: {exc}")
        return tuple(out)

    def _escalate(self, raw: YMap) -> Escalation | None:
        if "escalate" not in raw:
            return None
        value = raw["escalate"]
        if not isinstance(value, YMap):
            self.error(raw.where("escalate"), "escalate: expected {window: DURATION, steps: [...]}")
            return None
        self._check_keys(value, ("window", "steps"), "escalate")
        window = None
        try:
            window = parse_duration(value.get("window"))
        except SchemaProblem as exc:
            self.error(
                value.where("window") if "window" in value else value.pos, f"escalate.window: {exc}"
            )
        steps_raw = value.get("steps")
        steps: list[ActionSpec] = []
        if not isinstance(steps_raw, YList) or not steps_raw:
            self.error(
                value.where("steps") if "steps" in value else value.pos,
                "escalate.steps: expected a list of actions like [warn, mute 10m, ban]",
            )
        else:
            for i, item in enumerate(steps_raw):
                try:
                    steps.append(parse_action(item, in_steps=True))
                except SchemaProblem as exc:
                    self.error(steps_raw.where(i), f"escalate.steps: {exc}")
        if window is None or not steps:
            return None
        return Escalation(window, tuple(steps))

    def _scope_warnings(
        self, raw: YMap, rule_id: str, actions: Sequence[ActionSpec], escalate: Escalation | None
    ) -> None:
        granted = self.granted_scopes or frozenset()
        kinds = {a.kind for a in actions} | {s.kind for s in (escalate.steps if escalate else ())}
        for kind in sorted(kinds):
            scope = ACTION_SCOPES.get(kind)
            if scope and scope not in granted:
                where = raw.where("then") if "then" in raw else raw.where("escalate")
                self.warning(
                    where,
                    f"rule {rule_id!r}: {kind} needs the OAuth scope {scope}, which the current "
                    "token lacks; the rule will only observe until you log in with it",
                )

    # --- conditions -------------------------------------------------------------------

    def _mapping(self, node: YMap, ctx: _RuleContext, *, top: bool = False) -> c.Predicate:
        parts: list[c.Predicate] = []
        for key, value in node.items():
            where = node.where(key)
            spec = CONDITION_KEYS.get(key)
            if spec is None:
                self.error(
                    node.key_pos.get(key, where),
                    f"unknown condition {key!r}{did_you_mean(key, CONDITION_KEYS)}",
                )
                continue
            if not (spec.events & ctx.on):
                kinds = ", ".join(sorted(ctx.on))
                self.error(
                    node.key_pos.get(key, where),
                    f"{key} does not apply to on: {kinds} (it needs one of {', '.join(sorted(spec.events))})",
                )
                continue
            if key in STATE_KEYS:
                if not top:
                    self.error(
                        node.key_pos.get(key, where),
                        f"{key} may only be used at the top level of when",
                    )
                    continue
                if ctx.window is not None:
                    self.error(
                        node.key_pos.get(key, where),
                        "a rule takes one of rate and repeat, not both",
                    )
                    continue
                ctx.window = self._window(key, value, where)
                ctx.per_room = ctx.window is not None and ctx.window.per == "room"
                continue
            predicate = self._condition(key, spec.kind, value, where, ctx)
            if predicate is not None:
                parts.append(predicate)
        if not parts:
            return c.always
        return parts[0] if len(parts) == 1 else c.AllOf(tuple(parts))

    def _condition(
        self, key: str, kind: str, value: Any, where: Pos, ctx: _RuleContext
    ) -> c.Predicate | None:
        try:
            return self._build(key, kind, value, where, ctx)
        except SchemaProblem as exc:
            self.error(where, f"{key}: {exc}")
            return None

    def _build(
        self, key: str, kind: str, value: Any, where: Pos, ctx: _RuleContext
    ) -> c.Predicate | None:
        which: c.Field = "nickname" if key.startswith("user.nickname.") else "text"
        if kind in ("any", "all"):
            if not isinstance(value, YList) or not value:
                raise SchemaProblem("expected a list of conditions")
            parts = []
            for i, item in enumerate(value):
                if not isinstance(item, YMap):
                    self.error(value.where(i), f"{key}: each item is a mapping of conditions")
                    continue
                parts.append(self._mapping(item, ctx))
            return c.AnyOf(tuple(parts)) if kind == "any" else c.AllOf(tuple(parts))
        if kind == "not":
            if not isinstance(value, YMap):
                raise SchemaProblem("expected a mapping of conditions")
            return c.Not(self._mapping(value, ctx), label=", ".join(value))
        if kind in ("words", "contains", "equals", "starts_with", "ends_with"):
            return self._terms(key, kind, value, where, ctx, which)
        if kind == "regex":
            return self._regex(key, value, which)
        if kind == "links":
            return self._links(key, value, which)
        if kind in ("length", "repeated_chars", "emoji_count", "mentions", "caps_ratio"):
            op, number = _comparison(value)
            return c.Compare(key, c.measure_of(which, kind), op, number)
        if kind == "zalgo":
            return c.Compare(key, c.measure_of(which, "zalgo"), "==", _bool(value))
        if kind == "language":
            codes = frozenset(x.casefold() for x in _strings(value))
            return c.OneOf(key, c.language, codes)
        if kind.startswith("is_") and kind != "is_new":
            return c.Compare(key, c.user_attr(kind), "==", _bool(value))
        if kind == "is_new":
            ctx.uses_is_new = True
            return c.Compare(key, c.user_is_new, "==", _bool(value))
        if kind in ("gifter_level", "follower_count"):
            op, number = _comparison(value)
            return c.Compare(key, c.user_attr(kind), op, number)
        if kind == "in":
            return c.OneOf(key, c.user_ids, self._id_set(value, where))
        if kind == "name":
            names = frozenset(n.casefold() for n in _strings(value))
            return c.OneOf(key, c.gift_name, names)
        if kind in ("diamonds", "total_diamonds"):
            op, number = _comparison(value)
            return c.Compare(key, c.gift_attr(kind), op, number)
        if kind == "comment_rate":
            op, number = _comparison(value)
            ctx.uses_comment_rate = True
            return c.Compare(key, c.room_comment_rate, op, number)
        msg = f"the key kind {kind!r} has no builder"
        raise AssertionError(msg)

    def _terms(
        self, key: str, mode: str, value: Any, where: Pos, ctx: _RuleContext, which: c.Field
    ) -> c.Predicate:
        inline: list[str] = []
        refs: list[str] = []
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            pos = value.where(i) if isinstance(value, YList) else where
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                self.error(pos, f"{key}: expected text, a list of texts or '@list', got {item!r}")
                continue
            text = str(item)
            if text.startswith("@") and len(text) > 1 and " " not in text:
                if self._list_ref(text, pos) is not None:
                    refs.append(text[1:])
            elif len(text) > MAX_TERM_LENGTH:
                self.error(
                    pos,
                    f"{key}: a term of {len(text)} characters; a term may have at most"
                    f" {MAX_TERM_LENGTH}",
                )
            else:
                inline.append(text)
        level = ctx.level
        if self.over_budget:  # the ruleset is refused already: skip the costly part
            return c.Terms(key, which, level, mode, frozenset(), {})  # type: ignore[arg-type]
        # A list goes into a level's matcher once, however many rules use it there.
        fresh = [n for n in dict.fromkeys(refs) if (level, n) not in self.list_ids]
        count = len(inline) + sum(len(self.lists[n].terms) for n in fresh)
        text_size = sum(map(len, inline)) + sum(self.lists[n].text for n in fresh)
        if self.entries + count > MAX_TERMS:
            raise SchemaProblem(
                f"with these {count} terms the rules have {self.entries + count};"
                f" all rules together may have at most {MAX_TERMS} (a list counts once"
                " for each normalize level it is used at)"
            )
        if self.entry_text + text_size > MAX_TERM_TEXT:
            raise SchemaProblem(
                f"with these terms the rules have {self.entry_text + text_size} characters"
                f" of terms; all rules together may have at most {MAX_TERM_TEXT}"
            )
        self.entries += count
        self.entry_text += text_size
        for name in fresh:
            self.list_ids[level, name] = self._add_terms(level, self.lists[name].terms)
        ids = set(self._add_terms(level, inline))
        for name in refs:
            ids |= self.list_ids[level, name]
        if not ids and (inline or any(self.lists[n].terms for n in refs)):
            raise SchemaProblem("none of the terms has a letter or digit to match")
        names = self.term_names[level]
        return c.Terms(key, which, ctx.level, mode, frozenset(ids), names)  # type: ignore[arg-type]

    def _add_terms(self, level: Level, terms: Iterable[str]) -> frozenset[int]:
        """The ids of ``terms`` in the matcher of ``level`` (added to it if new)."""
        matcher = self.matchers[level]
        names = self.term_names[level]
        ids: set[int] = set()
        for term in terms:
            term_id = matcher.add(term)
            if term_id is not None:
                ids.add(term_id)
                names.setdefault(term_id, term)
        return frozenset(ids)

    def _regex(self, key: str, value: Any, which: c.Field) -> c.Predicate:
        patterns = _strings(value)
        options = re2.Options()
        options.log_errors = False
        for pattern in patterns:
            if len(pattern) > MAX_REGEX:
                raise SchemaProblem(f"a pattern may be at most {MAX_REGEX} characters")
            try:
                re2.compile(pattern, options)
            except re2.error as exc:
                raise SchemaProblem(_re2_message(pattern, exc)) from None
        source = "|".join(f"(?:{p})" for p in patterns) if len(patterns) > 1 else patterns[0]
        try:
            compiled = re2.compile(source, options)
        except re2.error as exc:
            raise SchemaProblem(_re2_message(source, exc)) from None
        return c.Regex(key, which, compiled, source)

    def _links(self, key: str, value: Any, which: c.Field) -> c.Predicate:
        if value is True:
            return c.Links(key, which, ())
        if value is False:
            return c.Not(c.Links(key, which, ()), label=key)
        if isinstance(value, Mapping) and set(value) <= {"allow"}:
            allow = _strings(value.get("allow", []))
            for domain in allow:
                if "/" in domain or " " in domain or "." not in domain:
                    raise SchemaProblem(f"allow: {domain!r} is not a domain like tiktok.com")
            return c.Links(key, which, tuple(allow))
        raise SchemaProblem("expected true, false or {allow: [domains]}")

    def _id_set(self, value: Any, where: Pos) -> frozenset[str]:
        items = _strings(value)
        out: set[str] = set()
        for item in items:
            if item.startswith("@"):
                out.update(
                    t.strip().lstrip("@").casefold() for t in self._list_ref(item, where) or []
                )
            else:
                out.add(item.lstrip("@").casefold())
        return frozenset(out)

    def _window(self, key: str, value: Any, where: Pos) -> Window | None:
        if not isinstance(value, YMap):
            self.error(where, f"{key}: expected {{count: N, within: DURATION, per: user|room}}")
            return None
        allowed = ("count", "within", "per") + (("similarity",) if key == "repeat" else ())
        self._check_keys(value, allowed, key)
        count = value.get("count")
        problems = len(self.diagnostics)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100_000:
            self.error(
                value.where("count") if "count" in value else value.pos,
                f"{key}.count: expected a whole number from 1 to 100000, got {count!r}",
            )
        within = None
        try:
            within = parse_duration(value.get("within"))
        except SchemaProblem as exc:
            self.error(
                value.where("within") if "within" in value else value.pos, f"{key}.within: {exc}"
            )
        per = value.get("per", "user")
        if per not in ("user", "room"):
            self.error(value.where("per"), f"{key}.per: expected user or room, got {per!r}")
        similarity = value.get("similarity", 1.0)
        if (
            isinstance(similarity, bool)
            or not isinstance(similarity, int | float)
            or not 0 < similarity <= 1
        ):
            self.error(
                value.where("similarity"),
                f"{key}.similarity: expected a number above 0 and at most 1, got {similarity!r}",
            )
        if len(self.diagnostics) > problems or within is None:
            return None
        assert isinstance(count, int)
        return Window(key, count, within, per, float(similarity))  # type: ignore[arg-type]


def _comparison(value: Any) -> tuple[str, float]:
    """``parse_comparison``, and the number must be finite (``"< 1e999"`` is not)."""
    try:
        op, number = parse_comparison(value)
    except OverflowError:  # an int too big for a float
        number = math.inf
    if not math.isfinite(number):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:56] + "...'"
        raise SchemaProblem(f"expected a finite number, got {shown}")
    return op, number


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise SchemaProblem(f"expected true or false, got {value!r}")
    return value


def _strings(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise SchemaProblem(f"expected text or a list of texts, got {item!r}")
        out.append(str(item))
    if not out:
        raise SchemaProblem("expected at least one value")
    return out


def _re2_message(pattern: str, exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    hint = ""
    if "(?=" in pattern or "(?!" in pattern or "(?<" in pattern:
        hint = "; RE2 runs in linear time and has no lookarounds"
    elif "\\1" in pattern or "\\2" in pattern:
        hint = "; RE2 runs in linear time and has no backreferences"
    return f"RE2 refuses the pattern {pattern[:80]!r}: {detail}{hint}"


def _content_hash(raw: YMap, defaults: YMap | None) -> str:
    data = {"rule": raw, "defaults": dict((defaults or {}).items())}
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
