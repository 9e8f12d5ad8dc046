"""``modbot rules check``, ``modbot rules test`` and ``modbot replay``: the rules,
offline."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from modbot.actions.table import kind_of
from modbot.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail
from modbot.cli.progress import Progress, is_terminal
from modbot.clock import SystemClock
from modbot.config import Settings
from modbot.errors import ConfigError
from modbot.euler.oauth import TokenStore
from modbot.events import Event, EventError, User, format_ts, parse_event
from modbot.files import check_state_dir
from modbot.inert import shown
from modbot.log import scrub
from modbot.rules.compile import CompiledRuleset, load_ruleset
from modbot.rules.diagnostics import Diagnostic, did_you_mean
from modbot.rules.engine import Decision, Engine


def _granted(settings: Settings) -> frozenset[str] | None:
    """The stored grant's scopes, if there is a readable grant (for scope warnings)."""
    try:
        check_state_dir(settings.state_dir)
        tokens = TokenStore(settings.state_dir).load()
    except ConfigError:
        return None
    return tokens.scopes if tokens else None


def load_rules(
    paths: Sequence[Path], *, out: TextIO | None, granted: frozenset[str] | None = None
) -> CompiledRuleset | None:
    """Compile the rules; print every diagnostic to stderr (and ``out`` when given)."""
    ruleset, diagnostics = load_ruleset(list(paths), granted_scopes=granted)
    for diagnostic in diagnostics:
        print(scrub(str(diagnostic)), file=out or sys.stderr)
    return ruleset


def check_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    paths = args.paths or [settings.rules_dir]
    ruleset, diagnostics = load_ruleset(list(paths), granted_scopes=_granted(settings))
    where = ", ".join(str(p) for p in paths)
    if ruleset is not None and not ruleset.files:
        # A folder with no rule file checks nothing: not "OK" (a wrong path, a .yml typo?).
        diagnostics = [
            *diagnostics,
            Diagnostic(
                where,
                1,
                1,
                "warning",
                "no rule files (*.yaml or *.yml) here: nothing was checked",
            ),
        ]
    for diagnostic in diagnostics:
        if args.json:
            print(json.dumps(dataclasses.asdict(diagnostic), ensure_ascii=True), file=out)
        else:
            print(scrub(str(diagnostic)), file=out)
    if ruleset is None:
        sys.stderr.write("modbot: the rules have errors; nothing would be loaded\n")
        return EXIT_FAILED
    if not ruleset.files:
        return EXIT_FAILED
    if not args.json:
        rules, files = len(ruleset.rules), len(ruleset.files)
        print(
            f"{where}: {rules} rule{'s' * (rules != 1)} in {files} file{'s' * (files != 1)}, OK",
            file=out,
        )
    return EXIT_OK


def test_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    if args.kind in ("comment", "question") and args.text is None:
        fail(f"modbot: a {args.kind} needs its text: give --text")
        return EXIT_USAGE
    user_data: dict[str, Any] = {"user_id": "6800000000000000001", "unique_id": "test_viewer"}
    record: dict[str, Any] = {}
    try:
        user_data.update(_json_object(args.user_json, "--user-json"))
        record = _json_object(args.event_json, "--event-json")
        user_data.update(_json_object(json.dumps(record.pop("user", {})), "--event-json user"))
    except ValueError as exc:
        fail(f"modbot: {exc}")
        return EXIT_USAGE
    now = SystemClock().now()
    defaults: dict[str, dict[str, Any]] = {
        "gift": {"gift": {"name": "Rose", "diamonds": 1}},
        "like": {"count": 1},
    }
    data: dict[str, Any] = {
        "kind": args.kind,
        "ts": now.isoformat(),
        "streamer": "test",
        "room_id": "1",
        **(defaults.get(args.kind) or {}),
        **record,
        "user": user_data,
    }
    if args.text is not None:
        data["text"] = args.text
    unknown = unknown_keys(data)
    if unknown:
        fail(f"modbot: {unknown[0]}")
        return EXIT_USAGE
    try:
        event = parse_event(data)
    except EventError as exc:
        fail(f"modbot: the event: {exc}")
        return EXIT_USAGE
    ruleset = load_rules(args.paths or [settings.rules_dir], out=None)
    if ruleset is None:
        return EXIT_FAILED
    decisions = Engine(ruleset).evaluate(event, now)
    if args.json:
        for d in decisions:
            print(json.dumps(_decision_json(d, event)), file=out)
        return EXIT_OK
    if not decisions:
        what = repr(args.text) if args.text is not None else f"this {args.kind} event"
        print(f"No rule fires on {what}.", file=out)
        return EXIT_OK
    for rule in dict.fromkeys(d.rule for d in decisions):
        mine = [d for d in decisions if d.rule == rule]
        print(f"{rule} fires ({mine[0].mode}): {mine[0].detail}", file=out)
        for d in mine:
            verdict = (
                f"not done: {d.suppressed}"
                if d.suppressed
                else ("would be done" if d.mode == "enforce" else "observed only")
            )
            print(f"  -> {d.describe()}  [{verdict}]", file=out)
    done = [d.describe() for d in decisions if d.enforced]
    print(f"Would do: {', '.join(done) if done else 'nothing (observe only)'}", file=out)
    return EXIT_OK


# The keys of the event record (docs/replay.md): anything else is reported, not ignored.
EVENT_KEYS = (
    "kind",
    "ts",
    "streamer",
    "room_id",
    "msg_id",
    "user",
    "text",
    "language",
    "gift",
    "count",
    "viewers",
    "moderation",
)


USER_KEYS = tuple(f.name for f in dataclasses.fields(User))


GIFT_KEYS = ("name", "diamonds", "count")


MODERATION_KEYS = ("action", "code", "operator")


def unknown_keys(data: object) -> list[str]:
    """A sentence for each key of an event record that modbot does not know (a typo such
    as ``isfollower`` would otherwise be read as false, in silence), with a suggestion."""
    if not isinstance(data, dict):
        return []
    found: list[str] = []
    for prefix, mapping, known in (
        ("", data, EVENT_KEYS),
        ("user.", data.get("user"), USER_KEYS),
        ("gift.", data.get("gift"), GIFT_KEYS),
        ("moderation.", data.get("moderation"), MODERATION_KEYS),
    ):
        if not isinstance(mapping, dict):
            continue
        for key in mapping:
            if key not in known:
                hint = did_you_mean(str(key), known) or f"; the keys are {', '.join(known)}"
                found.append(f"unknown key {prefix}{shown(str(key), 40)}{hint}")
    return found


def _json_object(text: str | None, option: str) -> dict[str, Any]:
    """``text`` as a JSON object ({} when not given); ValueError with a sentence if not."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{option} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"{option} is nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError(f'{option} must be a JSON object, like \'{{"key": "value"}}\'')
    return value


def _decision_json(d: Decision, event: Event) -> dict[str, Any]:
    record: dict[str, Any] = {
        "msg_id": event.msg_id,
        "ts": format_ts(event.ts),
        "user_id": d.user_id,
        "unique_id": d.unique_id,
        "rule": d.rule,
        "action": d.action,
        "mode": d.mode,
        "detail": d.detail,
    }
    takes = kind.takes if (kind := kind_of(d.action)) is not None else "nothing"
    if takes == "duration":
        record["duration_s"] = d.duration_s
    if d.text is not None:
        record["text"] = d.text
    if takes == "toggle":
        record["enabled"] = d.enabled
        record["for_s"] = d.for_s
    if d.strike is not None:
        record["strike"] = d.strike
    if d.suppressed:
        record["suppressed"] = d.suppressed
    return record


def replay_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    ruleset = load_rules(args.rule_paths or [settings.rules_dir], out=None)
    if ruleset is None:
        return EXIT_FAILED
    try:
        handle = args.events.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        fail(f"modbot: cannot read {args.events}: {exc.strerror}")
        return EXIT_FAILED
    engine = Engine(ruleset)
    summary: dict[str, dict[str, int]] = {
        r.id: {"fired": 0, "enforced": 0, "observed": 0} for r in ruleset.rules
    }
    events = bad = unknown = 0
    reported: set[str] = set()
    # On a terminal, a progress line on stderr; cleared before any other line lands on it.
    progress = Progress(sys.stderr, "replay", every=256)
    shared = progress.enabled and is_terminal(out)
    with handle, progress:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = _record_data(line)
                problems = unknown_keys(data)
                unknown += len(problems)
                for problem in set(problems) - reported:  # each unknown key once, not per line
                    reported.add(problem)
                    progress.clear()
                    sys.stderr.write(
                        scrub(f"{args.events}:{number}: warning: {problem} (ignored)") + "\n"
                    )
                event = parse_event(data)
            except EventError as exc:
                bad += 1
                progress.clear()
                sys.stderr.write(scrub(f"{args.events}:{number}: skipped: {exc}") + "\n")
                continue
            events += 1
            progress.step()
            decisions = engine.evaluate(event, event.ts)
            _tally(summary, decisions)
            _show_decisions(decisions, event, args.json, out, progress if shared else None)
    progress.finish()
    width = max([len(r) for r in summary] + [4])
    lines = [f"{'rule':<{width}}  fired  enforced  observed"]
    lines += [
        f"{rule:<{width}}  {c['fired']:>5}  {c['enforced']:>8}  {c['observed']:>8}"
        for rule, c in summary.items()
    ]
    tally = f"{events} events replayed, {bad} bad lines skipped"
    if unknown:
        tally += f", {unknown} unknown key{'s' * (unknown != 1)} ignored"
    lines.append(tally)
    if bad and not events:
        lines.append(
            f"modbot: no line of {args.events} is an event; docs/replay.md shows the format"
        )
    sys.stderr.write("\n".join(lines) + "\n")
    return EXIT_FAILED if bad and not events else EXIT_OK


def _show_decisions(
    decisions: list[Decision], event: Event, as_json: bool, out: TextIO, progress: Progress | None
) -> None:
    """Print one event's decisions that were not suppressed (``replay``); a progress
    line on the same terminal is taken off first."""
    for d in decisions:
        if d.suppressed:
            continue
        if progress is not None:
            progress.clear()
        if as_json:
            print(json.dumps(_decision_json(d, event)), file=out)
        else:
            # Viewer text (handle, matched words, reply texts) shown inert.
            print(
                f"{format_ts(event.ts)} @{shown(d.unique_id, 40)} {shown(d.rule)}: "
                f"{shown(d.describe(), 120)}"
                f"{'' if d.mode == 'enforce' else ' (observe)'} - {shown(d.detail, 200)}",
                file=out,
            )


def _tally(summary: dict[str, dict[str, int]], decisions: list[Decision]) -> None:
    """Count one event's decisions in the per-rule summary of ``replay``."""
    for rule in dict.fromkeys(d.rule for d in decisions):
        mine = [d for d in decisions if d.rule == rule]
        counts = summary.setdefault(rule, {"fired": 0, "enforced": 0, "observed": 0})
        counts["fired"] += 1
        if any(d.enforced for d in mine):
            counts["enforced"] += 1
        if any(d.mode == "observe" for d in mine):
            counts["observed"] += 1


def _record_data(line: str) -> object:
    """One JSONL line, decoded (EventError when it is not JSON)."""
    try:
        return json.loads(line)
    except ValueError as exc:
        raise EventError(f"not valid JSON ({exc.args[0] if exc.args else exc})") from None
    except RecursionError:
        raise EventError("JSON nested too deeply") from None
