"""Hostile input: random frames, events, rule files and templates never crash anything,
and what viewers write is stored and shown inert (issue 6)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modbot.audit import view
from modbot.audit.query import AuditFilter
from modbot.audit.store import AuditStore, NewEntry
from modbot.euler.decode import Decoder
from modbot.euler.ws import EulerWebSocket
from modbot.events import Event, EventError, parse_line
from modbot.rules.compile import MAX_TERMS, load_ruleset
from modbot.rules.engine import Engine
from tests.helpers import REPO
from tests.rules.util import comment

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TYPES = [
    "roomInfo",
    "WebcastChatMessage",
    "WebcastEmoteChatMessage",
    "WebcastGiftMessage",
    "WebcastMemberMessage",
    "WebcastLikeMessage",
    "WebcastSocialMessage",
    "WebcastQuestionNewMessage",
    "WebcastRoomUserSeqMessage",
    "WebcastControlMessage",
    "WebcastSomethingNew",
]
# Text that has broken programs before: format strings, terminal escapes, SQL, marks.
HOSTILE = [
    "{user.unique_id} %s %n {0} {{}} ${HOME}",
    "line one\nline two\r\nthree\x00four",
    "\x1b[2J\x1b[31mred\x1b]0;title\x07 \x9b31m",
    "'; DROP TABLE actions; --",
    '=HYPERLINK("http://evil")',
    "a" + "\u0301" * 10_000,
    "\u202eevil\u202c \u200b\ufeff",
    "\ud800 lone \udfff surrogates",
    "x" * 1_000_000,
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(HOSTILE[:-1]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)


def _user() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "userId": st.one_of(st.just("6812345678901234567"), json_scalars),
            "uniqueId": st.one_of(st.sampled_from(HOSTILE[:-1]), json_scalars),
            "nickname": st.one_of(st.sampled_from(HOSTILE[:-1]), json_scalars),
            "followInfo": json_values,
            "userAttr": json_values,
        },
    )


messages = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(TYPES), json_scalars)},
    optional={
        "data": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "comment": st.one_of(st.sampled_from(HOSTILE), json_scalars),
                    "user": st.one_of(_user(), json_values),
                    "common": st.fixed_dictionaries(
                        {},
                        optional={
                            "msgId": st.one_of(st.just("7000000000000000001"), json_scalars),
                            "createTime": st.one_of(st.just("1795576593000"), json_scalars),
                        },
                    ),
                    "roomId": st.one_of(st.just("7301234567890123456"), json_scalars),
                    "giftDetails": json_values,
                    "action": json_scalars,
                },
            ),
        )
    },
)
bundles = st.fixed_dictionaries(
    {"messages": st.lists(st.one_of(messages, json_values), max_size=6)},
    optional={"timestamp": json_scalars},
)

ENGINE = Engine()
_ruleset, _ = load_ruleset([REPO / "rules"])
assert _ruleset is not None
ENGINE.swap(_ruleset)


@FUZZ
@given(bundle=bundles)
def test_random_bundles_never_crash_the_decoder_or_the_engine(bundle: dict[str, Any]) -> None:
    decoder = Decoder("fuzz_host")
    events = decoder.decode(bundle)
    for event in events:
        assert isinstance(event, Event)
        assert not re.search("[\ud800-\udfff]", event.text)
        ENGINE.evaluate(event, event.ts)


@FUZZ
@given(frame=st.one_of(st.text(max_size=300), st.binary(max_size=100), bundles.map(json.dumps)))
def test_random_frames_are_parsed_or_counted(frame: str | bytes) -> None:
    ws = EulerWebSocket("ws://127.0.0.1:9", unique_id="fuzz_host", api_key="k")
    parsed = ws._parse(frame)
    assert parsed is not None or sum(ws.malformed.values()) == 1


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 100_000 + "]" * 100_000,  # deeper than Python's recursion limit
        '{"messages": ' + "[" * 50_000 + "]" * 50_000 + "}",
        '{"messages": [{"type": "WebcastChatMessage", "data": {"comment": "'
        + "x" * 2_000_000
        + '"}}]}',
        '{"messages": [' + "1e999999," * 1000 + "1]}",
        '{"messages": [{"type": "WebcastChatMessage"',  # truncated
        '{"messages": "\\ud800"}',
    ],
    ids=["deep", "deep-messages", "megabyte", "huge-numbers", "truncated", "surrogate"],
)
def test_pathological_frames(frame: str) -> None:
    ws = EulerWebSocket("ws://127.0.0.1:9", unique_id="fuzz_host", api_key="k")
    bundle = ws._parse(frame)
    if bundle is not None:
        events = Decoder("fuzz_host").decode(bundle)
        assert all(len(e.text) <= 10_000 for e in events)


@FUZZ
@given(line=st.one_of(st.text(max_size=200), json_values.map(json.dumps)))
def test_random_replay_lines_are_events_or_clear_errors(line: str) -> None:
    try:
        parse_line(line)
    except EventError as exc:
        message = str(exc)
    else:
        message = "parsed"
    assert message


def test_a_replay_line_nested_too_deeply() -> None:
    with pytest.raises(EventError, match="nested too deeply"):
        parse_line("[" * 100_000)


yaml_text = st.one_of(
    st.text(max_size=300),
    st.lists(
        st.sampled_from(
            [
                "version: 1\n",
                "rules:\n",
                "  - id: r\n",
                "    on: comment\n",
                "    when: {text.words: [a]}\n",
                "    when: {text.regex: '(a+)+$'}\n",
                "    when: {text.regex: '(a)\\1'}\n",
                "    then: [ban]\n",
                "    then: [reply: '{user.bogus}']\n",
                "    then: [mute 99y]\n",
                "lists:\n  x: [a, b]\n",
                "  - [\n",
                "&a [*a]\n",
                "- !!python/object:os.system 'id'\n",
                "\t\n",
                "    " + "{" * 500 + "\n",
            ]
        ),
        max_size=12,
    ).map("".join),
)


@FUZZ
@given(text=yaml_text)
def test_random_rule_files_report_errors_with_positions(text: str, tmp_path: Path) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    ruleset, diagnostics = load_ruleset([path])
    for d in diagnostics:
        assert d.line >= 1
        assert d.col >= 1
        assert re.match(r".+:\d+:\d+: (error|warning): .+", str(d)), str(d)
    if ruleset is None:
        assert any(d.severity == "error" for d in diagnostics)


def test_a_huge_list_and_a_pathological_regex_compile(tmp_path: Path) -> None:
    # The largest list a ruleset may hold (MAX_TERMS: what compiles in seconds).
    terms = "\n".join(f"term{i}" for i in range(MAX_TERMS - 10))
    (tmp_path / "big.txt").write_text(terms)
    (tmp_path / "rules.yaml").write_text(
        "version: 1\nlists:\n  big: {file: big.txt}\nrules:\n"
        "  - id: big\n    on: comment\n    when: {text.words: '@big'}\n    then: [log]\n"
        "  - id: evil-regex\n    on: comment\n    when: {text.regex: '(a+)+$'}\n    then: [log]\n"
    )
    ruleset, diagnostics = load_ruleset([tmp_path])
    assert ruleset is not None, [str(d) for d in diagnostics]
    engine = Engine()
    engine.swap(ruleset)
    event = comment("a" * 9_000 + "!")  # catastrophic for a backtracking engine
    decisions = engine.evaluate(event, event.ts)
    assert [d.rule for d in decisions] == []
    event2 = comment(f"x term{MAX_TERMS - 11} y", at=1)
    assert [d.rule for d in engine.evaluate(event2, event2.ts)] == ["big"]


@FUZZ
@given(template=st.text(max_size=80))
def test_random_templates_compile_or_fail_with_a_position(template: str, tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "version: 1\nrules:\n  - id: t\n    on: comment\n    then:\n      - reply: "
        + json.dumps(template)
        + "\n"
    )
    ruleset, diagnostics = load_ruleset([path])
    assert ruleset is not None or any(d.line >= 1 for d in diagnostics)


# --- viewer text in the audit log and its views ------------------------------------------

CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.mark.anyio
async def test_hostile_viewer_text_is_stored_and_shown_inert(tmp_path: Path) -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    async with AuditStore.open(tmp_path / "audit.db") as store:
        entries = []
        for i, text in enumerate(HOSTILE):
            event = Decoder("host").decode(
                {
                    "messages": [
                        {
                            "type": "WebcastChatMessage",
                            "data": {
                                "comment": text,
                                "user": {"userId": "6812345678901234567", "uniqueId": text[:64]},
                                "common": {
                                    "msgId": str(7_000_000_000_000_000_000 + i),
                                    "createTime": "1795576593000",
                                },
                            },
                        }
                    ]
                }
            )[0]
            entries.append(
                NewEntry(
                    ts=now,
                    streamer="host",
                    rule="r",
                    action="mute",
                    mode="enforce",
                    status="done",
                    user_id="6812345678901234567",
                    unique_id=event.user.unique_id if event.user else "",
                    msg_id=event.msg_id,
                    msg_text=event.text,
                    detail=f"matched {event.text[:50]}",
                )
            )
        await store.add(entries, now)
        rows = await store.query(AuditFilter(limit=None, oldest_first=True))
    assert len(rows) == len(HOSTILE)
    # What was stored is what the viewer wrote (cut to 10,000 characters, surrogates
    # replaced), SQL quotes and format strings included.
    assert rows[3].msg_text == "'; DROP TABLE actions; --"
    assert rows[0].msg_text == HOSTILE[0]
    assert "\ufffd lone \ufffd" in rows[7].msg_text
    table = view.table(rows)
    assert not CONTROL.search(table.replace("\n", "")), "a control character reached the table"
    assert "\x1b" not in table
    assert max(len(line) for line in table.splitlines()) < 400
    for line in view.json_lines(rows).splitlines():
        assert line.isascii()
        json.loads(line)
    parsed = list(csv.DictReader(io.StringIO(view.csv_text(rows))))
    assert len(parsed) == len(HOSTILE)
    assert all(not v.startswith(("=", "+", "-", "@")) for row in parsed for v in row.values())
