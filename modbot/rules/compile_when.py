"""The ``when`` compiler (pure): conditions to predicates, list terms to the matchers.

``ConditionCompiler`` holds what compiling a ruleset collects (diagnostics, lists, the
matchers and their term budget) and turns each ``when`` mapping into a predicate of
``modbot.rules.conditions``; ``compile.py`` adds files, rules and actions on top of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import re2

from modbot.rules import conditions as c
from modbot.rules.diagnostics import Diagnostic, Pos, did_you_mean
from modbot.rules.loader import (
    YList,
    YMap,
)
from modbot.rules.ruleset import Window
from modbot.rules.schema import (
    CONDITION_KEYS,
    STATE_KEYS,
    SchemaProblem,
    parse_comparison,
    parse_duration,
)
from modbot.rules.state import FUZZY_CANDIDATES
from modbot.rules.text import LEVELS, Level, Matcher, Reader

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
class ConditionCompiler:
    """The state of one compile and the compiling of conditions (see the module)."""

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
    matchers: dict[Level, Matcher] = field(default_factory=lambda: _matchers(Reader()))
    term_names: dict[Level, dict[int, str]] = field(
        default_factory=lambda: {lv: {} for lv in LEVELS}
    )
    uses_is_new: bool = False
    uses_comment_rate: bool = False

    def error(self, pos: Pos, message: str) -> None:
        self.diagnostics.append(Diagnostic.at(pos, message))

    def warning(self, pos: Pos, message: str) -> None:
        self.diagnostics.append(Diagnostic.at(pos, message, "warning"))

    def _duration(self, node: YMap, key: str, what: str) -> float | None:
        """The duration under ``key`` of ``node`` (None, and an error at the key or else
        at the mapping, when it is missing or not a duration)."""
        try:
            return parse_duration(node.get(key))
        except SchemaProblem as exc:
            self.error(node.where(key) if key in node else node.pos, f"{what}.{key}: {exc}")
            return None

    def _check_keys(self, node: YMap, known: Sequence[str], what: str) -> None:
        for key in node:
            if key not in known:
                self.error(
                    node.key_pos.get(key, node.pos),
                    f"unknown {what} key {key!r}{did_you_mean(key, known)}; expected one of "
                    + ", ".join(known),
                )

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
        within = self._duration(value, "within", key)
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
        if key == "repeat" and similarity < 1 and count > FUZZY_CANDIDATES + 1:
            self.warning(
                value.where("count"),
                f"repeat.count: {count} is more than distinct near copies can reach: a text "
                f"is compared with at most {FUZZY_CANDIDATES} others, so only texts repeated "
                f"word for word count past {FUZZY_CANDIDATES + 1}",
            )
        return Window(key, count, within, per, float(similarity))  # type: ignore[arg-type]


def _matchers(reader: Reader) -> dict[Level, Matcher]:
    """One matcher per level, all reading texts through one ``reader``."""
    return {level: Matcher(level, reader) for level in LEVELS}


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
