"""Audit entries for people (a table) and scripts (JSON lines, CSV) (pure).

Viewer-controlled text (handles, messages, reply texts) is shown inert with
:func:`modbot.inert.shown`: every invisible character (controls and ANSI escapes,
newlines and line separators, bidirectional overrides, isolates and marks, zero-width
characters, the byte-order mark, tag characters) becomes a visible placeholder and long
text is cut, so nothing a viewer wrote can move the cursor, recolour, reorder or forge
lines in a terminal. In CSV the same characters become spaces, and cells that a
spreadsheet would run as a formula are prefixed with a quote.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence

from modbot.actions.table import describe
from modbot.audit.records import Entry
from modbot.inert import INVISIBLE, shown

CSV_FIELDS = (
    "id",
    "ts",
    "streamer",
    "room_id",
    "user_id",
    "unique_id",
    "rule",
    "rule_hash",
    "action",
    "params",
    "mode",
    "status",
    "undo_of",
    "undone_by",
    "detail",
    "error",
    "msg_id",
    "text",
    "reason",
    "updated",
    "incident",
)
"""Every field of ``Entry.to_json``, in its order: a script reading CSV sees what one
reading JSON does."""


def what(entry: Entry) -> str:
    """The action in a few words: ``mute 10m``, ``comments off for 2m``, ``reply '...'``
    (the action table's words; a text shown inert)."""
    return describe(entry.action, entry.params, text_limit=30)


def table(entries: Sequence[Entry]) -> str:
    """A fixed-width table, newest first as given."""
    headers = ("ID", "TIME (UTC)", "STREAMER", "USER", "RULE", "ACTION", "STATUS", "LINK", "TEXT")
    rows = []
    for e in entries:
        link = (
            f"undone by #{e.undone_by}"
            if e.undone_by
            else (f"undo of #{e.undo_of}" if e.undo_of else "")
        )
        if e.incident is not None:
            link = f"{link}, incident {e.incident}" if link else f"incident {e.incident}"
        status = shown(e.status, 12) + (f": {shown(e.error, 40)}" if e.error else "")
        rows.append(
            (
                str(e.id),
                shown(e.ts.replace("T", " ").removesuffix("Z")[:19], 19),
                shown(e.streamer, 20),
                shown("@" + e.unique_id if e.unique_id else e.user_id, 24),
                shown(e.rule, 24),
                shown(what(e), 40) + (" (observe)" if e.mode == "observe" else ""),
                status,
                link,
                shown(e.msg_text, 50),
            )
        )
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def json_lines(entries: Iterable[Entry]) -> str:
    """One JSON object per entry (ensure_ascii: no raw control bytes reach a terminal)."""
    return "\n".join(json.dumps(e.to_json(), ensure_ascii=True) for e in entries)


def csv_text(entries: Iterable[Entry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for e in entries:
        data = e.to_json()
        data["params"] = json.dumps(e.params, sort_keys=True)
        writer.writerow([_cell(data.get(f)) for f in CSV_FIELDS])
    return out.getvalue().rstrip("\n")


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = INVISIBLE.sub(" ", str(value))
    return (
        "'" + text
        if text[:1] in ("=", "+", "-", "@", "\t") and not text.lstrip("-").isdigit()
        else text
    )
