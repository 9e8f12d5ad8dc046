"""Problems in rule files, reported the way a compiler reports code (pure).

``FILE:LINE:COL: error: MESSAGE`` (or ``warning:``), 1-based line and column, one
line per problem, sorted by file and position. Messages name the key, say what was
expected, and suggest the closest known key when one was misspelled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True, slots=True)
class Pos:
    """A place in a file (1-based line and column)."""

    file: str
    line: int
    col: int


@dataclass(frozen=True, order=True, slots=True)
class Diagnostic:
    """One problem in a rule file."""

    file: str
    line: int
    col: int
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}"

    @classmethod
    def at(cls, pos: Pos, message: str, severity: Severity = "error") -> Diagnostic:
        return cls(pos.file, pos.line, pos.col, severity, message)


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known word, or an empty string."""
    close = get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def errors(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Only the errors."""
    return [d for d in diagnostics if d.severity == "error"]


def render(diagnostics: Iterable[Diagnostic]) -> str:
    """All problems, one per line, in file and position order."""
    return "\n".join(str(d) for d in sorted(set(diagnostics)))
