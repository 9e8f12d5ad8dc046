"""Rule files to data that remembers where each value came from.

PyYAML's node tree (``yaml.compose``) carries the position of every key and value; the
loader turns it into ``YMap``/``YList`` (a dict and a list that also hold positions) so
that every later check can point at the exact line and column. Duplicate keys are an
error naming both lines. Reading files is I/O: the daemon calls this in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from modbot.rules.diagnostics import Diagnostic, Pos

RULE_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 8 * 1024 * 1024
_BOOL_TAG = "tag:yaml.org,2002:bool"


class YMap(dict[str, Any]):
    """A mapping from YAML with the position of itself, each key and each value."""

    pos: Pos
    key_pos: dict[str, Pos]
    value_pos: dict[str, Pos]

    def where(self, key: str) -> Pos:
        """Where the value of ``key`` starts (else the key, else the mapping)."""
        return self.value_pos.get(key) or self.key_pos.get(key) or self.pos


class YList(list[Any]):
    """A sequence from YAML with its position and each item's."""

    pos: Pos
    item_pos: list[Pos]

    def where(self, index: int) -> Pos:
        return self.item_pos[index] if 0 <= index < len(self.item_pos) else self.pos


@dataclass
class LoadedFile:
    """One parsed rule file (``data`` is None when it could not be parsed)."""

    path: Path
    data: Any
    diagnostics: list[Diagnostic] = field(default_factory=list)


def _pos(file: str, node: yaml.Node) -> Pos:
    mark = node.start_mark
    return Pos(file, mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.constructor = SafeConstructor()
        self.diagnostics: list[Diagnostic] = []

    def build(self, node: yaml.Node, depth: int = 0) -> Any:
        if depth > 100:
            self.diagnostics.append(Diagnostic.at(_pos(self.file, node), "nesting is too deep"))
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, depth)
        if isinstance(node, yaml.SequenceNode):
            out = YList(self.build(item, depth + 1) for item in node.value)
            out.pos = _pos(self.file, node)
            out.item_pos = [_pos(self.file, item) for item in node.value]
            return out
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag == _BOOL_TAG
            and node.value.lower() not in ("true", "false")
        ):
            # YAML 1.1 reads yes/no/on/off as booleans; rule authors mean the word
            # (`id: off`, `text.words: [no]`). Only true/false are booleans here.
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except ConstructorError as exc:
            self.diagnostics.append(
                Diagnostic.at(_pos(self.file, node), f"bad value: {exc.problem}")
            )
            return None

    def _mapping(self, node: yaml.MappingNode, depth: int) -> YMap:
        out = YMap()
        out.pos = _pos(self.file, node)
        out.key_pos = {}
        out.value_pos = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.diagnostics.append(
                    Diagnostic.at(
                        _pos(self.file, key_node), "YAML merge keys (<<) are not supported"
                    )
                )
                continue
            # Keys are the text as written: YAML 1.1 would read `on:` as the boolean true.
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            where = _pos(self.file, key_node)
            if not isinstance(key, str):
                self.diagnostics.append(
                    Diagnostic.at(where, f"keys must be text, got {type(key).__name__} {key!r}")
                )
                key = str(key)
            if key in out:
                first = out.key_pos[key]
                self.diagnostics.append(
                    Diagnostic.at(where, f"duplicate key {key!r} (first at line {first.line})")
                )
                continue
            out[key] = self.build(value_node, depth + 1)
            out.key_pos[key] = where
            out.value_pos[key] = _pos(self.file, value_node)
        return out


def parse(text: str, file: str) -> tuple[Any, list[Diagnostic]]:
    """YAML text to located data, with syntax and structure problems."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = f"{exc.context}: {problem}"
        opened, problem_at = exc.context_mark, exc.problem_mark
        if opened is not None and problem_at is not None and opened.line != problem_at.line:
            problem += f" (started at line {opened.line + 1}, column {opened.column + 1})"
        return None, [Diagnostic(file, line, col, "error", f"YAML syntax: {problem}")]
    except yaml.YAMLError as exc:
        return None, [Diagnostic(file, 1, 1, "error", f"YAML syntax: {exc}")]
    except RecursionError:
        return None, [Diagnostic(file, 1, 1, "error", "YAML nesting is too deep")]
    if node is None:
        return None, []
    builder = _Builder(file)
    try:
        data = builder.build(node)
    except RecursionError:
        return None, [Diagnostic(file, 1, 1, "error", "YAML nesting is too deep")]
    return data, builder.diagnostics


def read_file(path: Path) -> LoadedFile:
    """Read and parse one rule file."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            msg = f"the file is {size} bytes; rule files are limited to {MAX_FILE_BYTES}"
            return LoadedFile(path, None, [Diagnostic(name, 1, 1, "error", msg)])
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        msg = f"the file is not UTF-8 text (byte {exc.start})"
        return LoadedFile(path, None, [Diagnostic(name, 1, 1, "error", msg)])
    except OSError as exc:
        return LoadedFile(
            path, None, [Diagnostic(name, 1, 1, "error", f"cannot read: {exc.strerror}")]
        )
    data, diagnostics = parse(text, name)
    return LoadedFile(path, data, diagnostics)


def rule_files(paths: list[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Every ``*.yaml``/``*.yml`` of the given directories (in name order) and files."""
    found: list[Path] = []
    problems: list[Diagnostic] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.iterdir() if p.suffix in RULE_SUFFIXES and p.is_file())
            )
        elif path.is_file():
            found.append(path)
        else:
            problems.append(Diagnostic(str(path), 1, 1, "error", "no such file or directory"))
    return found, problems


def read_list_file(path: Path) -> list[str]:
    """A term list: one term per line, ``#`` starts a comment, blank lines skipped."""
    terms: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = (
            raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("\\#") else raw.strip()[1:]
        )
        if line:
            terms.append(line)
    return terms
