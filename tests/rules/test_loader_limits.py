"""Hostile rule and list files: each one a positioned diagnostic, fast, never a crash.

Through ``modbot rules check`` (exit code 1, one ``FILE:LINE:COL: error:`` line per
problem, no traceback) and through ``load_ruleset``, the function both it and a reload
of the daemon use (security review M2).
"""

from __future__ import annotations

import io
import os
import re
import time
import tracemalloc
from pathlib import Path

import pytest

from modbot.cli import main
from modbot.rules import compile as compile_module
from modbot.rules import compile_when, loader
from modbot.rules.compile import load_ruleset
from modbot.rules.loader import MAX_LIST_FILE_BYTES, MAX_RULE_FILE_BYTES, parse
from modbot.rules.text import Matcher

LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): error: (?P<message>.+)$")

RULE = """\
version: 1
rules:
  - id: r
    on: comment
    when: {text.words: alpha}
    then: [log]
"""


def list_rule(target: str) -> str:
    """A rule file whose list ``x`` is ``{file: target}`` (the value at line 3, column 13)."""
    rule = RULE.replace("{text.words: alpha}", '{text.words: "@x"}')
    return rule.replace("rules:\n", f"lists:\n  x: {{file: {target}}}\nrules:\n", 1)


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    out = io.StringIO()
    state = path.parent / "no-state"  # never created: no stored grant
    code = main(["rules", "check", "--state-dir", str(state), str(path)], stdout=out)
    err = capsys.readouterr().err
    assert "Traceback" not in err + out.getvalue()
    lines = out.getvalue().splitlines()
    for line in lines if code else []:
        assert LINE.match(line), line
    return code, lines


def only_error(path: Path, capsys: pytest.CaptureFixture[str]) -> re.Match[str]:
    code, lines = check(path, capsys)
    assert code == 1
    assert len(lines) == 1, lines
    found = LINE.match(lines[0])
    assert found is not None
    return found


# --- YAML aliases ------------------------------------------------------------------------

BILLION_LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def test_billion_laughs_is_refused_at_once_with_little_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nine levels of nine aliases (a billion values from 351 bytes): each anchor is built
    once, the values it stands for are counted, and the count is refused at 100,000."""
    assert len(BILLION_LAUGHS) < 400
    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        ruleset, diagnostics = load_ruleset([path])
        took = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ruleset is None
    assert took < 0.5
    assert peak < 5_000_000
    assert [(d.line, d.col) for d in diagnostics] == [(5, 4)]  # where 100,000 is crossed
    assert "more than 100000 values once its YAML aliases are expanded" in diagnostics[0].message
    found = only_error(path, capsys)
    assert found["file"] == str(path)


def test_an_alias_bomb_inside_the_rules_is_refused_too(tmp_path: Path) -> None:
    words = (
        "w: &w ["
        + ", ".join(["lol"] * 10)
        + "]\n"
        + "".join(
            f"w{i}: &w{i} [{', '.join([f'*w{i - 1}' if i > 1 else '*w'] * 10)}]\n"
            for i in range(1, 8)
        )
    )
    text = "version: 1\nx:\n" + "".join("  " + line for line in words.splitlines(True))
    text += "rules:\n  - id: r\n    on: comment\n    when: {text.words: *w7}\n    then: [log]\n"
    path = tmp_path / "r.yaml"
    path.write_text(text)
    ruleset, diagnostics = load_ruleset([path])
    assert ruleset is None
    assert len(diagnostics) == 1
    assert "YAML aliases" in diagnostics[0].message


def test_aliases_within_the_limits_are_shared_values(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "version: 1\nlists:\n  x: &terms [alpha, beta]\n  y: *terms\nrules:\n"
        "  - id: r\n    on: comment\n    when: &when {text.words: '@x'}\n    then: [log]\n"
        "  - id: s\n    on: comment\n    when: *when\n    then: [log]\n"
    )
    ruleset, diagnostics = load_ruleset([path])
    assert diagnostics == []
    assert ruleset is not None
    assert [r.id for r in ruleset.rules] == ["r", "s"]


def test_long_text_repeated_by_aliases_is_refused() -> None:
    """100,000 values of text could still be gigabytes: characters are counted too."""
    text = 'a: &a "' + "x" * 100_000 + '"\nb: [' + ", ".join(["*a"] * 45) + "]\n"
    data, diagnostics = parse(text, "r.yaml")
    assert data is None
    assert [(d.line, d.message.split(" once")[0]) for d in diagnostics] == [
        (1, "the file holds more than 4194304 characters of text")
    ]


def test_a_recursive_alias_and_a_deep_chain_of_aliases_are_errors() -> None:
    _, diagnostics = parse("a: &x [1, *x]\n", "r.yaml")
    assert [(d.line, d.col, d.message) for d in diagnostics] == [
        (1, 4, "a YAML alias refers to a value it is in")
    ]
    # Each level one alias deeper: small, but 300 levels deep (said once).
    chain = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 300))
    _, diagnostics = parse(chain, "r.yaml")
    assert [d.message for d in diagnostics] == ["nesting is too deep (more than 100 levels)"]


# --- numbers -----------------------------------------------------------------------------


def test_a_number_of_5000_digits_is_one_diagnostic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PyYAML raises ValueError for it (Python's limit on int digits): once a traceback
    from `rules check` and a crash of the daemon on reload."""
    path = tmp_path / "r.yaml"
    path.write_text(RULE.replace("then: [log]", "then: [log]\n    priority: " + "9" * 5000))
    found = only_error(path, capsys)
    assert (found["line"], found["col"]) == ("7", "15")
    assert found["message"] == (
        "bad value: a number of 5000 characters; numbers may have at most 100"
        " (quote it if it is text)"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.0e+400", "bad value: '1.0e+400' is not a finite number (quote it if it is text)"),
        (".nan", "bad value: '.nan' is not a finite number (quote it if it is text)"),
        ("-.inf", "bad value: '-.inf' is not a finite number (quote it if it is text)"),
        ('"> ' + "9" * 400 + '"', "text.length: expected a finite number, got '> 999"),
        ("9" * 101, "bad value: a number of 101 characters; numbers may have at most 100"),
    ],
    ids=["overflow", "nan", "inf", "huge-comparison", "101-digits"],
)
def test_numbers_that_are_no_numbers_are_one_diagnostic(
    value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RULE.replace("{text.words: alpha}", "{text.length: " + value + "}"))
    found = only_error(path, capsys)
    assert found["message"].startswith(message)
    assert (found["line"], found["col"]) == ("5", "25")


# --- sizes and kinds of rule files -------------------------------------------------------


def test_a_rule_file_over_1_mib_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert MAX_RULE_FILE_BYTES == 1024 * 1024
    path = tmp_path / "r.yaml"
    path.write_text(RULE + "#" * (MAX_RULE_FILE_BYTES - len(RULE)))
    assert len(loader.read_bounded(path, MAX_RULE_FILE_BYTES)) == MAX_RULE_FILE_BYTES
    path.write_text(RULE + "#" * (MAX_RULE_FILE_BYTES + 1 - len(RULE)))
    found = only_error(path, capsys)
    assert found["message"] == "not read: it is 1048577 bytes; the limit is 1 MiB"


@pytest.mark.timeout(5)
def test_a_rule_file_that_is_a_fifo_or_a_device_is_refused_without_blocking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    code, lines = check(tmp_path, capsys)
    assert code == 1
    assert lines == [
        f"{tmp_path / name}:1:1: error: not read: it is {kind}, not a regular file"
        for name, kind in [
            ("fifo.yaml", "a FIFO (named pipe)"),
            ("zero.yaml", "a character device"),
        ]
    ]


# --- list files --------------------------------------------------------------------------


def list_error(rules: Path, target: str, capsys: pytest.CaptureFixture[str]) -> str:
    path = rules / "r.yaml"
    path.write_text(list_rule(target))
    found = only_error(path, capsys)
    assert (found["file"], found["line"], found["col"]) == (str(path), "3", "13")
    return found["message"]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("/dev/zero", "it is /dev/zero, outside the rules directory"),
        ("/dev/urandom", "it is /dev/urandom, outside the rules directory"),
        ("../../../../../../../../etc/passwd", "it is /etc/passwd, outside the rules directory"),
        ("/proc/self/environ", "outside the rules directory"),
    ],
    ids=["dev-zero", "dev-urandom", "etc-passwd", "proc-environ"],
)
def test_a_list_file_outside_the_rules_directory_is_refused(
    target: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = list_error(tmp_path, target, capsys)
    assert message.startswith(f"list 'x': not reading '{target}': ")
    assert reason in message
    assert message.endswith(f"outside the rules directory {tmp_path}; list files must be in it")


def test_a_symbolic_link_to_outside_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("token-like-words\n")
    rules = tmp_path / "rules"
    (rules / "lists").mkdir(parents=True)
    (rules / "lists" / "words.txt").symlink_to(secret)
    (rules / "zero.txt").symlink_to("/dev/zero")
    message = list_error(rules, "lists/words.txt", capsys)
    assert message == (
        f"list 'x': not reading 'lists/words.txt': it is {secret}, outside the rules"
        f" directory {rules}; list files must be in it"
    )
    assert "it is /dev/zero, outside" in list_error(rules, "zero.txt", capsys)


@pytest.mark.timeout(5)
def test_a_fifo_list_file_is_refused_without_blocking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(tmp_path / "words.txt")
    message = list_error(tmp_path, "words.txt", capsys)
    assert (
        message
        == "list 'x': not reading 'words.txt': it is a FIFO (named pipe), not a regular file"
    )


def test_a_directory_as_list_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "lists").mkdir()
    message = list_error(tmp_path, "lists", capsys)
    assert message == "list 'x': not reading 'lists': it is a directory, not a regular file"


def test_a_list_file_over_4_mib_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert MAX_LIST_FILE_BYTES == 4 * 1024 * 1024
    (tmp_path / "big.txt").write_bytes(b"term\n" + b"#" * (MAX_LIST_FILE_BYTES - 5))
    path = tmp_path / "r.yaml"
    path.write_text(list_rule("big.txt"))
    assert check(path, capsys)[0] == 0
    with (tmp_path / "big.txt").open("ab") as f:
        f.write(b"#")
    message = list_error(tmp_path, "big.txt", capsys)
    assert message == "list 'x': not reading 'big.txt': it is 4194305 bytes; the limit is 4 MiB"


def test_list_files_inside_the_rules_directory_still_load(tmp_path: Path) -> None:
    """Links that stay inside, and a rules directory reached by a link, are fine."""
    real = tmp_path / "real"
    (real / "lists").mkdir(parents=True)
    (real / "lists" / "words.txt").write_text("alpha\nbeta\n")
    (real / "again.txt").symlink_to(real / "lists" / "words.txt")
    (real / "r.yaml").write_text(
        list_rule("again.txt").replace(
            "  x: {file: again.txt}",
            "  x: {file: again.txt}\n  y: {file: lists/../lists/words.txt}",
        )
    )
    (tmp_path / "linked").symlink_to(real)
    for rules in (real, tmp_path / "linked"):
        ruleset, diagnostics = load_ruleset([rules])
        assert diagnostics == []
        assert ruleset is not None
        assert ruleset.matchers["standard"].size == 2


def test_the_reader_stops_at_the_limit_for_a_file_that_says_it_is_empty() -> None:
    """/proc files say they are 0 bytes: the read itself stops at limit + 1 bytes."""
    with pytest.raises(loader.FileRefused, match="more than 16 bytes"):
        loader.read_bounded(Path("/proc/self/maps"), 16)


# --- anything unexpected -----------------------------------------------------------------


def test_an_unexpected_exception_of_the_compiler_is_one_diagnostic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        msg = "compiler bug\nwith two lines"
        raise RuntimeError(msg)

    monkeypatch.setattr(compile_module._Compiler, "compile", broken)
    path = tmp_path / "r.yaml"
    path.write_text(RULE)
    found = only_error(path, capsys)
    assert found["message"] == (
        "the rules could not be compiled: RuntimeError: compiler bug with two lines"
    )


def test_an_unexpected_exception_of_the_parser_is_one_diagnostic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(text: str, file: str) -> None:
        raise KeyError(file)

    monkeypatch.setattr(loader, "parse", broken)
    path = tmp_path / "r.yaml"
    path.write_text(RULE)
    found = only_error(path, capsys)
    assert found["message"] == f"could not be loaded: KeyError: '{path}'"


# --- what all terms together may cost ------------------------------------------------------
# Compiling a term costs time and memory: 440,000 terms (a 4 MiB list file) took 43 s and
# 1.09 GB, past the daemon's reload limit and MemoryMax. The totals are checked as the
# lists are read and before terms go into a matcher, so an over-size ruleset is refused
# at once instead of after the work.


SYLLABLES = ("ba", "ke", "di", "mo", "pu", "la", "ne", "ri", "so", "tu")


def term(i: int) -> str:
    """The ``i``th of two-word terms, distinct however normalised (no digit, no letter
    twice in a row)."""
    word = "".join(SYLLABLES[int(d)] for d in str(i))
    return f"{word} {SYLLABLES[i % 10]}x"


def words_file(path: Path, count: int, start: int = 0) -> None:
    """``count`` distinct two-word terms, one a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{term(i)}\n" for i in range(start, start + count)))


def lists_rule(names: dict[str, str], uses: list[tuple[str, str]], prefix: str = "r") -> str:
    """A rule file with list files ``names`` (name: file) and one rule per (list, level)."""
    lists = "".join(f"  {name}: {{file: {file}}}\n" for name, file in names.items())
    rules = "".join(
        f"  - id: {prefix}{i}\n    on: comment\n    normalize: {level}\n"
        f'    when: {{text.words: "@{name}"}}\n    then: [log]\n'
        for i, (name, level) in enumerate(uses)
    )
    return f"version: 1\nlists:\n{lists}rules:\n{rules}"


def refused_quickly(rules: Path) -> list[str]:
    started = time.process_time()
    ruleset, diagnostics = load_ruleset([rules])
    took = time.process_time() - started
    assert ruleset is None
    assert took < 0.5, f"refused after {took:.2f} s: the terms were compiled first"
    return [d.message for d in diagnostics if d.severity == "error"]


def test_a_4_mib_list_of_terms_is_refused_before_it_is_compiled(tmp_path: Path) -> None:
    """The review's repro: a list file within its 4 MiB holding ~440,000 terms."""
    big = tmp_path / "lists" / "big.txt"
    big.parent.mkdir()
    big.write_text("".join(f"{i:x} {i % 251:x}\n" for i in range(440_000)))
    assert big.stat().st_size <= MAX_LIST_FILE_BYTES
    (tmp_path / "r.yaml").write_text(lists_rule({"big": "lists/big.txt"}, [("big", "standard")]))
    assert refused_quickly(tmp_path) == [
        (
            f"list 'big': the lists hold 440000 terms with this one; all lists together may hold"
            f" at most {compile_module.MAX_TERMS} terms"
        )
    ]


def test_lists_just_over_the_total_term_limit_are_refused_before_compiling(
    tmp_path: Path,
) -> None:
    """Two lists in two rule files, each within any one-file limit, one term too many."""
    assert compile_module.MAX_TERMS == 25_000
    half = compile_module.MAX_TERMS // 2
    words_file(tmp_path / "a.txt", half)
    words_file(tmp_path / "b.txt", half + 1, start=half)
    (tmp_path / "1.yaml").write_text(lists_rule({"a": "a.txt"}, [("a", "standard")]))
    (tmp_path / "2.yaml").write_text(lists_rule({"b": "b.txt"}, [("b", "standard")], "s"))
    messages = refused_quickly(tmp_path)
    assert messages == [
        (
            f"list 'b': the lists hold {2 * half + 1} terms with this one; all lists together"
            " may hold at most 25000 terms"
        )
    ]


def test_a_list_counts_once_for_each_level_it_is_used_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each normalize level has its own matcher: a list used at two levels is in two."""
    monkeypatch.setattr(compile_when, "MAX_TERMS", 300)  # where the budget is kept
    words_file(tmp_path / "a.txt", 200)
    uses = [("a", "none"), ("a", "basic")]
    (tmp_path / "r.yaml").write_text(lists_rule({"a": "a.txt"}, uses))
    ruleset, diagnostics = load_ruleset([tmp_path])
    assert ruleset is None
    assert [d.message for d in diagnostics] == [
        (
            "text.words: with these 200 terms the rules have 400; all rules together may have at"
            " most 300 (a list counts once for each normalize level it is used at)"
        )
    ]


def test_a_list_used_by_many_rules_at_one_level_is_compiled_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fifty rules using one list at one level cost the list once, not fifty times."""
    monkeypatch.setattr(compile_when, "MAX_TERMS", 300)  # where the budget is kept
    words_file(tmp_path / "a.txt", 200)
    added: list[str] = []
    original = Matcher.add

    def counted(self: Matcher, term: str) -> int | None:
        added.append(term)
        return original(self, term)

    monkeypatch.setattr(Matcher, "add", counted)
    (tmp_path / "r.yaml").write_text(lists_rule({"a": "a.txt"}, [("a", "standard")] * 50))
    ruleset, diagnostics = load_ruleset([tmp_path])
    assert diagnostics == []
    assert ruleset is not None
    assert len(added) == 200
    assert all(r.condition == ruleset.rules[0].condition for r in ruleset.rules)


def test_inline_terms_count_towards_the_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compile_when, "MAX_TERMS", 3)
    (tmp_path / "r.yaml").write_text(
        RULE.replace("{text.words: alpha}", "{text.words: [alpha, beta]}")
        + "  - id: s\n    on: comment\n    when: {text.contains: [gamma, delta]}\n"
        "    then: [log]\n"
    )
    ruleset, diagnostics = load_ruleset([tmp_path])
    assert ruleset is None
    assert [(d.line, d.message) for d in diagnostics] == [
        (
            9,
            (
                "text.contains: with these 2 terms the rules have 4; all rules together may"
                " have at most 3 (a list counts once for each normalize level it is used at)"
            ),
        )
    ]


def test_the_characters_of_all_terms_are_limited(tmp_path: Path) -> None:
    """Long terms cost by their length: 1,100 terms of 1,000 characters are refused."""
    term = "x" * compile_module.MAX_TERM_LENGTH
    (tmp_path / "long.txt").write_text("".join(f"{i}{term[len(str(i)) :]}\n" for i in range(1100)))
    (tmp_path / "r.yaml").write_text(lists_rule({"long": "long.txt"}, [("long", "standard")]))
    assert refused_quickly(tmp_path) == [
        (
            "list 'long': the lists hold 1100000 characters of terms with this one; all lists"
            f" together may hold at most {compile_module.MAX_TERM_TEXT}"
        )
    ]


def test_a_term_of_650_000_characters_is_refused_not_a_crash(tmp_path: Path) -> None:
    """pyahocorasick frees its trie recursively: such a term crashed the interpreter."""
    huge = " ".join(f"w{i}" for i in range(100_000))
    assert len(huge) > 650_000
    (tmp_path / "one.txt").write_text(huge + "\n")
    (tmp_path / "r.yaml").write_text(
        lists_rule({"one": "one.txt"}, [("one", "standard")])
        + '  - id: inline\n    on: comment\n    when: {text.words: "'
        + "y" * 1001
        + '"}\n    then: [log]\n'
    )
    assert refused_quickly(tmp_path) == [
        f"list 'one': term 1 has {len(huge)} characters; a term may have at most 1000",
        "text.words: a term of 1001 characters; a term may have at most 1000",
    ]


def test_all_list_files_together_are_limited_in_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three list files of 3 MiB each (mostly comments): the third passes 8 MiB."""
    assert loader.MAX_LIST_BYTES == 8 * 1024 * 1024
    size = 3 * 1024 * 1024
    for name in "abc":
        (tmp_path / f"{name}.txt").write_bytes(f"{name}term\n".encode() + b"#" * (size - 6))
    files = {name: f"{name}.txt" for name in "abc"}
    (tmp_path / "r.yaml").write_text(lists_rule(files, [(n, "standard") for n in "abc"]))
    assert refused_quickly(tmp_path) == [
        (
            "list 'c': not reading 'c.txt': it is 3145728 bytes; all list files together may"
            " hold at most 8 MiB and the ones before it hold 6291456 bytes"
        )
    ]


def test_a_moderate_ruleset_still_compiles_and_matches(tmp_path: Path) -> None:
    words_file(tmp_path / "lists" / "a.txt", 2_000)
    words_file(tmp_path / "lists" / "b.txt", 2_000, start=2_000)
    files = {"a": "lists/a.txt", "b": "lists/b.txt"}
    uses = [("a", "standard"), ("b", "basic"), ("a", "standard")]
    (tmp_path / "r.yaml").write_text(lists_rule(files, uses))
    ruleset, diagnostics = load_ruleset([tmp_path])
    assert diagnostics == []
    assert ruleset is not None
    assert ruleset.matchers["standard"].size == 2_000
    assert ruleset.matchers["basic"].size == 2_000
    assert ruleset.matchers["standard"].find(f"say {term(1999)} now")
    assert ruleset.matchers["basic"].find(f"say {term(2000)} now")
