"""``modbot audit stats``: which rules misfire, per rule, from the audit log (pure).

For each rule, over the rows since a time (and of one streamer): how often it
``fired`` (every decision it made, whatever became of it), how often that was
``enforced`` (carried out: done), ``observed`` (observe mode, dry run, no scope),
``skipped`` (a repeat, a cooldown, a message the speech check refused...), ``failed``
(the API said no) and still ``pending``; how many of its done actions were ``undone``
later, and the ``undo rate``: undone over its done actions that can be undone (mutes,
bans, comments off). A rule whose actions are often undone misfires: one whose rate
is far above the other rules' is flagged for review.

Reversals are not decisions: undo's rows (rule ``undo``) and the unmutes and
comments-back-on of expiry timers (which carry their rule's name) are left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modbot.actions.table import ACTIONS
from modbot.events import format_ts
from modbot.inert import shown

UNDO_RULE = "undo"  # modbot.actions.plan.UNDO_RULE (the audit layer sits below actions)
FLAG_MIN_UNDONE = 3  # a rule needs at least this many undone actions to be flagged
FLAG_MIN_RATE = 0.25  # ... an undo rate of at least this ...
FLAG_FACTOR = 2.0  # ... and at least this many times the other rules' rate


@dataclass(frozen=True)
class RuleStats:
    """One rule's figures."""

    rule: str
    fired: int
    enforced: int
    observed: int
    skipped: int
    failed: int
    pending: int
    undone: int
    undoable: int  # done actions that can be undone: the undo rate's denominator
    review: str | None = None  # why the rule is flagged for review

    @property
    def undo_rate(self) -> float | None:
        return self.undone / self.undoable if self.undoable else None

    def to_json(self) -> dict[str, Any]:
        rate = self.undo_rate
        return {
            "rule": self.rule,
            "fired": self.fired,
            "enforced": self.enforced,
            "observed": self.observed,
            "skipped": self.skipped,
            "failed": self.failed,
            "pending": self.pending,
            "undone": self.undone,
            "undoable": self.undoable,
            "undo_rate": None if rate is None else round(rate, 4),
            "review": self.review,
        }


def query(since: datetime | None, streamer: str | None) -> tuple[str, list[object]]:
    """The statement that counts, per rule, and its parameters."""
    undoable = sorted(name for name, kind in ACTIONS.items() if kind.inverse is not None)
    marks = ", ".join("?" for _ in undoable)
    where = [
        "rule != ?",
        "undo_of IS NULL",
        # An expiry's reversal (its params name the action it ends); a row whose params
        # are not JSON (no modbot wrote it) counts as a decision.
        "(CASE WHEN json_valid(params) THEN json_type(params, '$.expiry_of') END) IS NULL",
    ]
    params: list[object] = [*undoable, UNDO_RULE]
    if since is not None:
        where.append("ts >= ?")
        params.append(format_ts(since))
    if streamer is not None:
        where.append("streamer = ? COLLATE NOCASE")
        params.append(streamer.removeprefix("@"))
    # Built from fixed column names and placeholders only.
    sql = (
        "SELECT rule, count(*),"  # noqa: S608
        " sum(status = 'done' AND mode = 'enforce'),"
        " sum(status = 'observed'), sum(status = 'skipped'), sum(status = 'failed'),"
        " sum(status = 'pending'), sum(undone_by IS NOT NULL),"
        f" sum(status = 'done' AND mode = 'enforce' AND action IN ({marks}))"
        f" FROM actions WHERE {' AND '.join(where)} GROUP BY rule"
    )
    return sql, params


def from_rows(rows: Iterable[Sequence[Any]]) -> list[RuleStats]:
    """The figures of each rule (most fired first), with the flags for review."""
    found = [
        RuleStats(str(r[0]), *(int(v or 0) for v in r[1:9]))  # type: ignore[arg-type]
        for r in rows
    ]
    found.sort(key=lambda s: (-s.fired, s.rule))
    return [_flagged(s, found) for s in found]


def _flagged(stats: RuleStats, every: Sequence[RuleStats]) -> RuleStats:
    """The rule flagged for review when its undo rate is far above the other rules'."""
    rate = stats.undo_rate
    if rate is None or stats.undone < FLAG_MIN_UNDONE or rate < FLAG_MIN_RATE:
        return stats
    undone = sum(s.undone for s in every if s is not stats)
    undoable = sum(s.undoable for s in every if s is not stats)
    others = undone / undoable if undoable else 0.0
    if rate < FLAG_FACTOR * others:
        return stats
    why = f"{rate:.0%} of its actions were undone (the other rules: {others:.0%}): review it"
    return RuleStats(**{**stats.__dict__, "review": why})


def table(stats: Sequence[RuleStats]) -> str:
    """A fixed-width table for people, and a line under it for each flagged rule."""
    headers = (
        "RULE",
        "FIRED",
        "ENFORCED",
        "OBSERVED",
        "SKIPPED",
        "FAILED",
        "UNDONE",
        "UNDO RATE",
        "",
    )
    rows = []
    for s in stats:
        rate = s.undo_rate
        rows.append(
            (
                shown(s.rule, 32),
                str(s.fired),
                str(s.enforced),
                str(s.observed),
                str(s.skipped),
                str(s.failed),
                str(s.undone),
                "-" if rate is None else f"{rate:.0%}",
                "REVIEW" if s.review else "",
            )
        )
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) if i < len(cells) - 1 else c
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [line(headers), *(line(r) for r in rows)]
    flagged = [s for s in stats if s.review]
    if flagged:
        lines.append("")
        lines += [f"Review {shown(s.rule, 32)}: {s.review}." for s in flagged]
    pending = sum(s.pending for s in stats)
    if pending:
        lines.append(f"\n{pending} action(s) still pending (a call on its way, or interrupted).")
    return "\n".join(lines)


def json_lines(stats: Iterable[RuleStats]) -> str:
    """One JSON object per rule."""
    return "\n".join(json.dumps(s.to_json(), ensure_ascii=True) for s in stats)
