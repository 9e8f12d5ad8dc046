"""`modbot rules check`: every problem, with its position, like a compiler; golden files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from modbot.cli import main
from modbot.euler.oauth import TokenStore
from modbot.rules.compile import compile_texts, load_ruleset
from modbot.rules.diagnostics import errors

DATA = Path(__file__).parent.parent / "data"
REPO = Path(__file__).parent.parent.parent
BAD = sorted((DATA / "rules_bad").glob("*.yaml"))


def check(*paths: Path | str) -> tuple[int, str]:
    out = io.StringIO()
    state = REPO / "tests" / "data" / "no-state"  # never created: no stored grant
    code = main(["rules", "check", "--state-dir", str(state), *map(str, paths)], stdout=out)
    return code, out.getvalue()


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    # Golden files name paths relative to the repository root.
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_golden_diagnostics(path: Path) -> None:
    code, out = check(path.relative_to(REPO))
    expected = path.with_suffix(".expected").read_text()
    assert code == 1
    assert out.replace(f"{REPO}{os.sep}", "") == expected


def test_duplicate_ids_across_files() -> None:
    code, out = check((DATA / "rules_dup").relative_to(REPO))
    assert code == 1
    assert out == (DATA / "rules_dup" / "expected").read_text()


def test_every_line_has_the_compiler_form() -> None:
    for path in BAD:
        _, out = check(path.relative_to(REPO))
        for line in out.splitlines():
            file, line_no, col, rest = line.split(":", 3)
            assert file == str(path.relative_to(REPO))
            assert int(line_no) >= 1
            assert int(col) >= 1
            assert rest.startswith((" error: ", " warning: "))


def test_the_example_rules_check() -> None:
    code, out = check("rules")
    assert code == 0
    assert out == "rules: 8 rules in 1 file, OK\n"


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    code, out = check(tmp_path / "nope")
    assert code == 1
    assert "nope" in out


def test_unreadable_list_is_reported_once(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe bad\n")
    (tmp_path / "r.yaml").write_text(
        "version: 1\nlists:\n  bad: {file: bad.txt}\nrules:\n"
        "  - id: r\n    on: comment\n    when: {text.words: '@bad'}\n    then: [log]\n"
    )
    code, out = check(tmp_path)
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{tmp_path / 'r.yaml'}:3:15: error: list 'bad': cannot read")


def test_list_files_take_comments_and_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "words.txt").write_text("# a comment\n\nfirst term\n  second  \n")
    (tmp_path / "r.yaml").write_text(
        "version: 1\nlists:\n  w: {file: lists/words.txt}\nrules:\n"
        "  - id: r\n    on: comment\n    when: {text.words: '@w'}\n    then: [log]\n"
    )
    ruleset, diagnostics = load_ruleset([tmp_path])
    assert not diagnostics
    assert ruleset is not None
    assert ruleset.matchers["standard"].size == 2


def test_scope_warnings_name_the_rule_and_the_scope() -> None:
    ruleset, diagnostics = load_ruleset(
        [REPO / "rules"], granted_scopes=frozenset({"webcast:fetch", "webcast:mute"})
    )
    assert ruleset is not None  # warnings do not stop loading
    assert not errors(diagnostics)
    text = "\n".join(map(str, diagnostics))
    assert "rule 'slurs': ban needs the OAuth scope webcast:ban" in text
    assert "rule 'copy-paste-raid': comments needs the OAuth scope webcast:comments" in text
    assert "mute" not in text.replace("muted", "")
    full = frozenset(
        {"webcast:fetch", "webcast:mute", "webcast:ban", "webcast:chat", "webcast:comments"}
    )
    assert load_ruleset([REPO / "rules"], granted_scopes=full)[1] == []


def test_check_warns_about_scopes_of_the_stored_grant(
    tmp_path: Path, token_store: TokenStore
) -> None:
    from modbot.euler.tokens import token_set_from_answer

    answer = {
        "access_token": "a",
        "refresh_token": "r",
        "expires_in": 3600,
        "scope": "webcast:mute",
    }
    token_store.save(token_set_from_answer(answer, 0.0))
    out = io.StringIO()
    code = main(
        ["rules", "check", "--state-dir", str(token_store.path.parent), "rules"], stdout=out
    )
    assert code == 0  # warnings alone do not fail the check
    assert "warning: rule 'slurs': ban needs the OAuth scope webcast:ban" in out.getvalue()


def test_a_repeat_count_past_what_near_copies_reach_is_warned_about() -> None:
    """Near copies are found among at most FUZZY_CANDIDATES other texts: a count above
    that (plus the text itself) needs word-for-word repeats, which the author may not
    mean. The rule still loads."""
    rule = """version: 1
rules:
  - id: raid
    on: comment
    when:
      repeat: {{count: {count}, within: 30s, per: room{similarity}}}
    then: [log]
"""
    for count, similarity, warned in [
        (26, ", similarity: 0.85", True),
        (25, ", similarity: 0.85", False),
        (60, "", False),  # identical texts only: repeats are what it counts
    ]:
        text = rule.format(count=count, similarity=similarity)
        ruleset, diagnostics = compile_texts({"raid.yaml": text})
        assert ruleset is not None
        shown = [str(d) for d in diagnostics]
        assert bool(shown) is warned, shown
        if warned:
            expected = (
                f"raid.yaml:6:23: warning: repeat.count: {count} is more than distinct near "
                "copies can reach: a text is compared with at most 24 others, so only texts "
                "repeated word for word count past 25"
            )
            assert shown == [expected]
