"""``modbot keywords list|sync``: TikTok's own keyword filter of the streamer (I/O).

``sync --list NAME`` pushes the plain terms of the rules' list NAME into the filter as a
diff: it adds the terms the filter lacks, and removes only words modbot itself added for
that list (known from the audit log: its ``keyword_add`` and ``keyword_remove`` entries,
replayed in order) that have left the list. The streamer's own words are never touched,
and a word modbot added that someone else took out since is not put back (humans
first). Every change is an audited action (rule ``manual``), undone by ``modbot undo``;
a second run changes nothing; ``--dry-run`` shows the diff and changes nothing.

A plain term is a list term TikTok can hold as it is: one line, no wildcard (``*``,
``?``) and not a ``/regex/``. The evasion matching stays in modbot.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TextIO

from modbot.cli.console_lists import (
    MANUAL_RULE,
    Console,
    Refused,
    emit,
    reason,
    run_console,
    table,
)
from modbot.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Usage, fail
from modbot.cli.viewers import who_ran
from modbot.config import Settings
from modbot.inert import shown

if TYPE_CHECKING:
    from pathlib import Path

    from modbot.audit.records import Entry
    from modbot.cli.console_lists import Subparsers
    from modbot.euler.client import SensitiveWord

SCOPE = "webcast:sensitive_words"
MAX_WORD = 100  # characters: a longer term is not a keyword (TikTok's limit is not documented)


def add_keywords(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    words = commands.add_parser(
        "keywords",
        parents=[common],
        help="TikTok's own keyword filter: list it, or sync a rule list's plain terms into it",
        description=(
            "TikTok's keyword filter of the streamer (scope webcast:sensitive_words). sync "
            "pushes the plain terms of a rule list as a diff: adds what is missing, removes "
            "only words modbot added that left the list, never the streamer's own words. "
            "Every change is audited and undoable; --dry-run shows the diff only."
        ),
    )
    words.add_argument("op", choices=("list", "sync"), help="what to do")
    words.add_argument("--list", dest="list_name", metavar="NAME", help="the rules' list to sync")
    words.add_argument("--streamer", help="whose filter (may be left out with one streamer)")
    words.add_argument("--rules", type=_path, metavar="DIR", help="the rules (default: rules_dir)")
    words.add_argument("--dry-run", action="store_true", help="show the diff, change nothing")
    words.add_argument("--reason", metavar="TEXT", help="why, kept in the audit log")
    words.add_argument("--json", action="store_true", help="one JSON object per line")
    words.set_defaults(handler=keywords_command)


def _path(text: str) -> Path:
    from pathlib import Path  # noqa: PLC0415

    return Path(text)


def plain(term: str) -> str | None:
    """The term as a keyword, or None when it is not a plain term."""
    word = term.strip()
    if not word or len(word) > MAX_WORD or any(c in word for c in "*?\n\r"):
        return None
    if len(word) > 1 and word.startswith("/") and word.endswith("/"):
        return None
    return word


def list_terms(rules: Path, name: str) -> list[str]:
    """The terms of the rules' list ``name``, after the rules check clean (Refused otherwise)."""
    from modbot.rules.compile import load_ruleset  # noqa: PLC0415
    from modbot.rules.diagnostics import errors  # noqa: PLC0415
    from modbot.rules.loader import YList, YMap, read_file, read_list_file, rule_files  # noqa: PLC0415

    ruleset, problems = load_ruleset([rules])
    bad = errors(problems)
    if ruleset is None or bad:
        first = bad[0] if bad else None
        where = f": {shown(str(first), 200)}" if first is not None else ""
        raise Refused(f"the rules in {rules} do not check clean (`modbot rules check`){where}")
    files, _ = rule_files([rules])
    for path in files:
        top = read_file(path).data
        lists = top.get("lists") if isinstance(top, YMap) else None
        value = lists.get(name) if isinstance(lists, YMap) else None
        if isinstance(value, YList):
            return [str(t) for t in value]
        if isinstance(value, YMap) and isinstance(value.get("file"), str):
            terms, _ = read_list_file(path.parent / value["file"], path.parent)
            return terms
    raise Refused(f"the rules in {rules} have no list {shown(name)!r}")


def keywords_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    if args.op == "sync" and not args.list_name:
        fail("modbot: keywords sync needs --list NAME (a list of the rules' lists:)")
        return EXIT_USAGE
    if args.op == "list" and (args.list_name or args.dry_run):
        fail("modbot: keywords list takes no --list or --dry-run")
        return EXIT_USAGE

    async def body(con: Console) -> int:
        (streamer,) = con.streamers(args)
        con.need(SCOPE, f"modbot keywords {args.op}")
        info = await con.client.userinfo()
        if (info.unique_id or "").lower() != streamer.lower() or not info.sec_uid:
            msg = (
                f"the grant is @{shown(info.unique_id or '?')}'s: only the account that "
                f"granted can have its keyword filter read or changed, not @{shown(streamer)}'s"
            )
            raise Refused(msg)
        room = await con.room_of(streamer)
        current = await con.client.list_sensitive_words(room, info.sec_uid)
        if args.op == "list":
            return _show(out, args.json, streamer, current, await _ours(con, streamer, None))
        terms = list_terms(args.rules or con.settings.rules_dir, args.list_name)
        return await _sync(con, args, out, streamer, room, info.sec_uid, terms, current)

    return run_console(args, settings, out, body)


async def _history(con: Console, streamer: str) -> list[Entry]:
    """modbot's done keyword changes for the streamer, oldest first."""
    from modbot.audit.query import AuditFilter  # noqa: PLC0415

    found: list[Entry] = []
    for action in ("keyword_add", "keyword_remove"):
        where = AuditFilter(action=action, streamer=streamer, status="done", limit=None)
        found += await con.store.query(where)
    return sorted(found, key=lambda e: e.id)


async def _ours(con: Console, streamer: str, list_name: str | None) -> dict[str, int]:
    """The words modbot added (for ``list_name``, or any list) and did not take out since:
    word (case-folded) -> the audit id that added it."""
    ours: dict[str, int] = {}
    for entry in await _history(con, streamer):
        word = str(entry.params.get("word", "")).casefold()
        if list_name is not None and entry.params.get("list") != list_name:
            continue
        if entry.action == "keyword_add":
            ours[word] = entry.id
        else:
            ours.pop(word, None)
    return ours


def _show(
    out: TextIO, as_json: bool, streamer: str, current: list[SensitiveWord], ours: dict[str, int]
) -> int:
    rows = []
    for word in current:
        added = ours.get(word.word.casefold())
        if as_json:
            emit(
                out,
                {
                    "streamer": streamer,
                    "word_id": word.word_id,
                    "word": word.word,
                    "added_by_modbot": added,
                },
            )
        else:
            rows.append((word.word_id, shown(word.word, 60), f"modbot #{added}" if added else "-"))
    if not as_json:
        if rows:
            table(out, ("WORD ID", "WORD", "ADDED BY"), rows)
        else:
            print(f"@{shown(streamer)}'s keyword filter is empty.", file=out)
    return EXIT_OK


async def _sync(
    con: Console,
    args: argparse.Namespace,
    out: TextIO,
    streamer: str,
    room: str,
    sec_uid: str,
    terms: list[str],
    current: list[SensitiveWord],
) -> int:
    from modbot.actions.plan import own  # noqa: PLC0415

    name: str = args.list_name
    in_filter = {w.word.casefold() for w in current}
    ours = await _ours(con, streamer, name)
    wanted: dict[str, str] = {}
    skipped = 0
    for term in terms:
        word = plain(term)
        if word is None:
            skipped += 1
        else:
            wanted.setdefault(word.casefold(), word)
    # a word modbot added that someone took out of the filter since is theirs to decide
    adds = [w for k, w in wanted.items() if k not in in_filter and k not in ours]
    kept_out = [w for k, w in wanted.items() if k not in in_filter and k in ours]
    removes = [k for k in ours if k not in wanted and k in in_filter]
    originals = {w.word.casefold(): w.word for w in current}
    changes = [("keyword_add", w) for w in adds] + [
        ("keyword_remove", originals[k]) for k in removes
    ]
    by = who_ran()
    failures = 0
    for action, word in changes:
        op = "add" if action == "keyword_add" else "remove"
        if args.dry_run:
            record: dict[str, Any] = {"op": op, "word": word, "list": name, "status": "planned"}
            line = f"would {op} {shown(word, 60)!r}"
        else:
            intent = own(
                action,
                ts=con.clock.now(),
                streamer=streamer,
                room_id=room,
                rule=MANUAL_RULE,
                user_id="",
                unique_id="",
                detail=f"by hand: keywords sync of list {name}, run by {by}",
                reason=reason(args),
                extra={"word": word, "list": name, "sec_anchor_id": sec_uid, "by": by},
            )
            entry, _ = await con.executor.carry_out(intent)
            failures += entry.status != "done"
            record = {"op": op, "word": word, "list": name, "status": entry.status, "id": entry.id}
            line = f"#{entry.id} {op} {shown(word, 60)!r}: {entry.status}"
            if entry.status != "done":
                record["error"] = entry.error
                line += f" ({shown(entry.error or '', 200)})"
        if args.json:
            emit(out, {"streamer": streamer} | record)
        else:
            print(line, file=out)
    if not args.json:
        summary = (
            f"{'Would change' if args.dry_run else 'Changed'} {len(changes)} word(s) of "
            f"@{shown(streamer)}'s filter for list {shown(name)!r}; "
            f"{len(wanted) - len(adds) - len(kept_out)} already there"
        )
        if kept_out:
            summary += (
                f", {len(kept_out)} taken out by someone else since modbot added them (left out)"
            )
        if skipped:
            summary += f", {skipped} term(s) not plain (kept for modbot's own matching)"
        print(summary + ".", file=out)
    return EXIT_FAILED if failures else EXIT_OK


__all__ = ["Usage", "add_keywords", "keywords_command", "list_terms", "plain"]
