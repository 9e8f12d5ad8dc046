"""Rule files to data that remembers where each value came from.

PyYAML's node tree (``yaml.compose``) carries the position of every key and value; the
loader turns it into ``YMap``/``YList`` (a dict and a list that also hold positions) so
that every later check can point at the exact line and column. Duplicate keys are an
error naming both lines. Reading files is I/O: the daemon calls this in a worker thread.

Rule files are hostile input like any other: a file is read only if it is a regular
file within its size limit (never a FIFO or a device, never more than the limit), list
files only from inside the rules directory, aliases are counted as the copies they
stand for, and a value PyYAML cannot make is a diagnostic at its place.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from modbot.rules.diagnostics import Diagnostic, Pos

RULE_SUFFIXES = (".yaml", ".yml")
MIB = 1024 * 1024
MAX_RULE_FILE_BYTES = 1 * MIB
MAX_LIST_FILE_BYTES = 4 * MIB
# All list files of a ruleset together (read before any term is compiled, so a hostile
# set of files is refused before it costs memory; what the terms cost is bounded by the
# compiler's MAX_TERMS and MAX_TERM_TEXT).
MAX_LIST_BYTES = 8 * MIB
# What a file may expand to once YAML aliases are followed (an alias repeats its anchor's
# value: nine levels of ten aliases are a billion values from 351 bytes). Each anchor's
# value is built once and shared; these count the values as if each alias were a copy.
MAX_VALUES = 100_000
MAX_TEXT = 4 * MAX_RULE_FILE_BYTES  # characters of scalars, aliases counted as copies
MAX_DEPTH = 100
MAX_DIGITS = 100  # a whole number; more is no count, level or id of anything
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"


class FileRefused(Exception):
    """A file that is not read, with the reason in words for a diagnostic."""


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _size(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit % MIB == 0 else f"{limit} bytes"


def read_bounded(path: Path, limit: int, *, limit_name: str | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, else ``FileRefused``.

    Never blocks and never reads more than ``limit + 1`` bytes: a FIFO, a device
    (``/dev/zero``) or a directory is refused by its type, checked before it is opened
    and again on the open descriptor (opened non-blocking, so a FIFO without a writer
    does not wait); a file that grows while it is read, or says it is smaller than it
    is (``/proc``), is refused at the limit. ``OSError`` for a file that cannot be
    opened (``FileNotFoundError`` when there is none). ``limit_name`` says in words
    which limit ``limit`` is, for the diagnostic (else "the limit is N MiB").
    """
    before = path.stat()
    if not stat.S_ISREG(before.st_mode):
        raise FileRefused(f"it is {_kind(before.st_mode)}, not a regular file")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"it is {_kind(info.st_mode)}, not a regular file")
        too_big = limit_name or f"the limit is {_size(limit)}"
        if info.st_size > limit:
            raise FileRefused(f"it is {info.st_size} bytes; {too_big}")
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:
            raise FileRefused(f"it is more than {limit} bytes; {too_big}")
        return b"".join(chunks)
    finally:
        os.close(fd)


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


class _TooBig(Exception):
    """The file expands to more than the loader builds (raised out of the whole build)."""

    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


class _Builder:
    """Located data from a node graph, each node built once.

    PyYAML's composer gives an alias the very node of its anchor, so the graph is as
    small as the text; only building it as a tree would repeat shared nodes. Each node
    is built once and its value shared (nothing later changes the data), while
    ``values``/``text`` count what the tree would hold, so a file that would expand
    beyond ``MAX_VALUES`` values or ``MAX_TEXT`` characters is refused, quickly, at the
    alias that crosses the limit.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.constructor = SafeConstructor()
        self.diagnostics: list[Diagnostic] = []
        self.values = 0
        self.text = 0
        # node -> (value, values and characters it stands for, its height)
        self.built: dict[yaml.Node, tuple[Any, int, int, int]] = {}
        self.building: set[yaml.Node] = set()
        self.deep = False

    def build(self, node: yaml.Node) -> Any:
        return self._node(node, 0)[0]

    def _count(self, node: yaml.Node, values: int, text: int) -> None:
        self.values += values
        self.text += text
        if self.values > MAX_VALUES:
            raise _TooBig(
                node,
                f"the file holds more than {MAX_VALUES} values once its YAML aliases are"
                " expanded (each *alias repeats its &anchor); put long term lists in a"
                " list file",
            )
        if self.text > MAX_TEXT:
            raise _TooBig(
                node,
                f"the file holds more than {MAX_TEXT} characters of text once its YAML"
                " aliases are expanded (each *alias repeats its &anchor)",
            )

    def _node(self, node: yaml.Node, depth: int) -> tuple[Any, int]:
        """The value of ``node`` and its height (1 for a scalar)."""
        done = self.built.get(node)
        if done is not None:
            value, values, text, height = done
            self._count(node, values, text)
            if depth + height > MAX_DEPTH + 1:
                self._too_deep(node)
                return None, 1
            return value, height
        if node in self.building:
            self.diagnostics.append(
                Diagnostic.at(_pos(self.file, node), "a YAML alias refers to a value it is in")
            )
            return None, 1
        if depth > MAX_DEPTH:
            self._too_deep(node)
            return None, 1
        values, text = self.values, self.text
        self._count(node, 1, len(node.value) if isinstance(node, yaml.ScalarNode) else 0)
        self.building.add(node)
        try:
            value, height = self._make(node, depth)
        finally:
            self.building.discard(node)
        self.built[node] = (value, self.values - values, self.text - text, height)
        return value, height

    def _too_deep(self, node: yaml.Node) -> None:
        if not self.deep:  # once: through aliases, one place can be too deep many times
            self.deep = True
            message = f"nesting is too deep (more than {MAX_DEPTH} levels)"
            self.diagnostics.append(Diagnostic.at(_pos(self.file, node), message))

    def _make(self, node: yaml.Node, depth: int) -> tuple[Any, int]:
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, depth)
        if isinstance(node, yaml.SequenceNode):
            out = YList()
            height = 0
            for item in node.value:
                value, item_height = self._node(item, depth + 1)
                out.append(value)
                height = max(height, item_height)
            out.pos = _pos(self.file, node)
            out.item_pos = [_pos(self.file, item) for item in node.value]
            return out, height + 1
        return self._scalar(node), 1

    def _scalar(self, node: yaml.Node) -> Any:
        where = _pos(self.file, node)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _BOOL_TAG and node.value.lower() not in ("true", "false"):
                # YAML 1.1 reads yes/no/on/off as booleans; rule authors mean the word
                # (`id: off`, `text.words: [no]`). Only true/false are booleans here.
                return node.value
            if node.tag == _INT_TAG and len(node.value) > MAX_DIGITS:
                # Python refuses to convert more than 4,300 digits (ValueError), and no
                # count, level or id of the rule language needs a hundred.
                self.diagnostics.append(
                    Diagnostic.at(
                        where,
                        f"bad value: a number of {len(node.value)} characters; numbers may"
                        f" have at most {MAX_DIGITS} (quote it if it is text)",
                    )
                )
                return None
        try:
            value = self.constructor.construct_object(node, deep=True)
        except ConstructorError as exc:
            self.diagnostics.append(Diagnostic.at(where, f"bad value: {exc.problem}"))
            return None
        except Exception as exc:  # noqa: BLE001 (a value PyYAML cannot make: a diagnostic)
            self.diagnostics.append(Diagnostic.at(where, f"bad value: {one_line(exc)}"))
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.diagnostics.append(
                Diagnostic.at(
                    where,
                    f"bad value: {node.value!r} is not a finite number (quote it if it is text)",
                )
            )
            return None
        return value

    def _mapping(self, node: yaml.MappingNode, depth: int) -> tuple[YMap, int]:
        out = YMap()
        height = 0
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
            out[key], value_height = self._node(value_node, depth + 1)
            height = max(height, value_height)
            out.key_pos[key] = where
            out.value_pos[key] = _pos(self.file, value_node)
        return out, height + 1


def one_line(exc: BaseException) -> str:
    """An exception as ``Class: message``, on one line and not too long."""
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _tab_at(text: str, mark: yaml.Mark | None) -> bool:
    """Whether the line of a YAML error has a tab in its indentation or at the error."""
    if mark is None:
        return "\t" in text
    lines = text.splitlines()
    if not 0 <= mark.line < len(lines):
        return False
    row = lines[mark.line]
    indent = row[: len(row) - len(row.lstrip(" \t"))]
    return "\t" in indent or row[mark.column : mark.column + 1] == "\t"


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
        if _tab_at(text, mark):
            problem = f"a tab character: indent with spaces, YAML does not allow tabs ({problem})"
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
    except _TooBig as exc:
        return None, [Diagnostic.at(_pos(file, exc.node), exc.message)]
    except RecursionError:
        return None, [Diagnostic(file, 1, 1, "error", "YAML nesting is too deep")]
    return data, builder.diagnostics


def read_file(path: Path) -> LoadedFile:
    """Read and parse one rule file (a regular file of at most ``MAX_RULE_FILE_BYTES``)."""
    name = str(path)

    def refused(message: str) -> LoadedFile:
        return LoadedFile(path, None, [Diagnostic(name, 1, 1, "error", message)])

    try:
        text = read_bounded(path, MAX_RULE_FILE_BYTES).decode("utf-8")
    except FileRefused as exc:
        return refused(f"not read: {exc}")
    except UnicodeDecodeError as exc:
        return refused(f"the file is not UTF-8 text (byte {exc.start})")
    except OSError as exc:
        return refused(f"cannot read: {exc.strerror}")
    try:
        data, diagnostics = parse(text, name)
    except Exception as exc:  # noqa: BLE001 (a bug of the loader: a refused file)
        return refused(f"could not be loaded: {one_line(exc)}")
    return LoadedFile(path, data, diagnostics)


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except OSError:
        return False


def rule_files(paths: list[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Every ``*.yaml``/``*.yml`` of the given directories (in name order) and files.

    Anything by those names that is not a directory is returned, so that reading it
    says what it is (a FIFO or a device is refused there, not skipped in silence).
    """
    found: list[Path] = []
    problems: list[Diagnostic] = []
    for path in paths:
        if _is_dir(path):
            try:
                entries = sorted(path.iterdir())
            except OSError as exc:
                problems.append(
                    Diagnostic(str(path), 1, 1, "error", f"cannot list: {exc.strerror}")
                )
                continue
            found.extend(p for p in entries if p.suffix in RULE_SUFFIXES and not _is_dir(p))
        elif path.exists() or path.is_symlink():
            found.append(path)
        else:
            problems.append(Diagnostic(str(path), 1, 1, "error", "no such file or directory"))
    return found, problems


def read_list_file(path: Path, root: Path, *, room: int = MAX_LIST_BYTES) -> tuple[list[str], int]:
    """A term list and its size in bytes: one term per line, ``#`` starts a comment,
    blank lines skipped.

    ``path`` must resolve (symbolic links followed) to a regular file inside ``root``,
    the rules directory, of at most ``MAX_LIST_FILE_BYTES`` and at most ``room`` bytes
    (what is left of ``MAX_LIST_BYTES`` after the list files read before it); else
    ``FileRefused``. ``OSError`` when it cannot be read, ``UnicodeDecodeError`` when it
    is not UTF-8.
    """
    try:
        target = path.resolve()
        base = root.resolve()
    except RuntimeError as exc:  # a loop of symbolic links (Python 3.11)
        raise FileRefused(f"it cannot be resolved: {exc}") from None
    if not target.is_relative_to(base):
        raise FileRefused(
            f"it is {target}, outside the rules directory {base}; list files must be in it"
        )
    limit, limit_name = MAX_LIST_FILE_BYTES, None
    if room < limit:
        limit = max(room, 0)
        limit_name = (
            f"all list files together may hold at most {_size(MAX_LIST_BYTES)}"
            f" and the ones before it hold {MAX_LIST_BYTES - limit} bytes"
        )
    data = read_bounded(target, limit, limit_name=limit_name)
    text = data.decode("utf-8")
    terms: list[str] = []
    for raw in text.splitlines():
        line = (
            raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("\\#") else raw.strip()[1:]
        )
        if line:
            terms.append(line)
    return terms, len(data)
