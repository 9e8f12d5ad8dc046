"""Rule files to a frozen, checked ``CompiledRuleset`` (pure but for reading list files).

Everything is compiled at load: conditions become predicates, RE2 patterns are
compiled, every list term of every rule goes into one matcher per normalisation level,
durations become seconds. Every problem is collected with its position, so one run of
``modbot rules check`` reports all of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from modbot.euler.scopes import ACTION_SCOPES
from modbot.inert import is_blank
from modbot.rules import conditions as c
from modbot.rules.compile_when import (
    MAX_REGEX,
    MAX_TERM_LENGTH,
    MAX_TERM_TEXT,
    MAX_TERMS,
    ConditionCompiler,
    _ListDef,
    _RuleContext,
)
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
from modbot.rules.ruleset import (
    CompiledRule,
    CompiledRuleset,
    Escalation,
    Exempt,
    RuleIndex,
    TermSource,
    Window,
    empty_ruleset,
    required_terms,
)
from modbot.rules.schema import (
    DEFAULT_KEYS,
    FILE_KEYS,
    MODES,
    NORMALIZE,
    ROLES,
    RULE_EVENTS,
    RULE_ID,
    RULE_KEYS,
    VERSION,
    ActionSpec,
    SchemaProblem,
    Template,
    parse_action,
    parse_duration,
    parse_template,
)
from modbot.rules.speech import SpeechCheck
from modbot.rules.text import Level

__all__ = [
    "MAX_REGEX",
    "MAX_TERMS",
    "MAX_TERM_LENGTH",
    "MAX_TERM_TEXT",
    "CompiledRule",
    "CompiledRuleset",
    "Escalation",
    "Exempt",
    "RuleIndex",
    "TermSource",
    "Window",
    "compile_texts",
    "empty_ruleset",
    "load_ruleset",
    "required_terms",
]

DEFAULT_EXEMPT = ("owner", "moderator")


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


class _Compiler(ConditionCompiler):
    """A whole ruleset: files, lists, rules, actions (conditions: ``ConditionCompiler``)."""

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
        window = self._duration(value, "window", "escalate")
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


def _content_hash(raw: YMap, defaults: YMap | None) -> str:
    data = {"rule": raw, "defaults": dict((defaults or {}).items())}
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
