"""Euler WebSocket messages become modbot's events; bad ones are counted and skipped."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from modbot.euler.decode import Decoder
from modbot.events import Event
from modbot.fake import messages as m

ROOM = "7301234567890123456"
NOW = 1_795_000_000_123
OWNER = m.Viewer("host", "6800000000000000001", nickname="Host", is_owner=True)
FAN = m.Viewer(
    "fan_1",
    "7123456789012345678",  # above 2^53: must stay exact
    nickname="Fan One",
    follower=True,
    subscriber=True,
    gifter_level=7,
    follower_count=321,
)


def decoder() -> Decoder:
    d = Decoder("host")
    d.decode(m.bundle([m.room_info(ROOM, OWNER, NOW)], NOW))
    return d


def test_room_info_gives_room_and_owner() -> None:
    d = decoder()
    assert (d.room_id, d.owner_user_id) == (ROOM, OWNER.user_id)


def test_a_comment_becomes_a_comment_event_with_exact_ids() -> None:
    (event,) = decoder().decode(
        m.bundle(
            [m.chat(ROOM, FAN, "hello there", NOW, language="de", msg_id="7399999999999999999")],
            NOW,
        )
    )
    assert event.kind == "comment"
    assert event.ts == datetime.fromtimestamp(NOW / 1000, UTC)
    assert (event.streamer, event.room_id, event.msg_id) == ("host", ROOM, "7399999999999999999")
    assert (event.text, event.language) == ("hello there", "de")
    user = event.user
    assert user is not None
    assert user.user_id == "7123456789012345678"
    assert (user.unique_id, user.nickname) == ("fan_1", "Fan One")
    assert (user.is_follower, user.is_subscriber, user.is_moderator, user.is_owner) == (
        True,
        True,
        False,
        False,
    )
    assert (user.gifter_level, user.follower_count) == (7, 321)


def test_every_kind() -> None:
    d = decoder()
    events = d.decode(
        m.bundle(
            [
                m.emote(ROOM, FAN, "e1", NOW),
                m.gift(ROOM, FAN, "Rose", 1, 5, NOW),
                m.join(ROOM, FAN, NOW),
                m.like(ROOM, FAN, 15, NOW),
                m.social(ROOM, FAN, "follow", NOW),
                m.social(ROOM, FAN, "share", NOW),
                m.question(ROOM, FAN, "when next stream?", NOW),
                m.viewers(ROOM, 1234, NOW),
                m.stream_end(ROOM, NOW),
            ],
            NOW,
        )
    )
    assert [e.kind for e in events] == [
        "emote",
        "gift",
        "join",
        "like",
        "follow",
        "share",
        "question",
        "viewers",
        "stream_end",
    ]
    gift = events[1].gift
    assert gift is not None
    assert (gift.name, gift.diamonds, gift.count, gift.total_diamonds) == ("Rose", 1, 5, 5)
    assert events[3].count == 15
    assert events[6].text == "when next stream?"
    assert events[7].viewers == 1234


def test_a_gift_streak_counts_once_at_its_end() -> None:
    d = decoder()
    running = m.gift(ROOM, FAN, "Rose", 1, 3, NOW, repeat_end=False)
    ended = m.gift(ROOM, FAN, "Rose", 1, 4, NOW, repeat_end=True)
    single = m.gift(ROOM, FAN, "Lion", 29999, 1, NOW, streakable=False, repeat_end=False)
    events = d.decode(m.bundle([running, ended, single], NOW))
    assert [(e.gift.name, e.gift.count) for e in events if e.gift] == [("Rose", 4), ("Lion", 1)]


def test_the_streamer_is_marked_owner() -> None:
    (event,) = decoder().decode(m.bundle([m.chat(ROOM, OWNER, "my own message", NOW)], NOW))
    assert event.user is not None
    assert event.user.is_owner
    # Even when the identity block does not say so, the room's owner id does.
    plain = m.chat(ROOM, OWNER, "again", NOW)
    plain["data"]["userIdentity"]["isAnchor"] = False
    (again,) = decoder().decode(m.bundle([plain], NOW))
    assert again.user is not None
    assert again.user.is_owner


def test_moderators_from_identity_or_admin_flag() -> None:
    mod = m.Viewer("mod", "42", moderator=True)
    (event,) = decoder().decode(m.bundle([m.chat(ROOM, mod, "hi", NOW)], NOW))
    assert event.user is not None
    assert event.user.is_moderator


def test_unknown_types_are_counted_and_bad_messages_skipped() -> None:
    d = decoder()
    broken_user = m.chat(ROOM, FAN, "x", NOW)
    broken_user["data"]["user"]["userId"] = "not-a-number"
    no_common = m.chat(ROOM, FAN, "y", NOW)
    del no_common["data"]["common"]
    events = d.decode(
        m.bundle(
            [
                {"type": "WebcastSomethingNew", "data": {}},
                {"type": "WebcastImDeleteMessage", "data": {}},
                "not an object",  # type: ignore[list-item]
                {"type": "WebcastChatMessage"},
                broken_user,
                no_common,
                m.chat(ROOM, FAN, "still here", NOW),
            ],
            NOW,
        )
    )
    assert [e.text for e in events] == ["still here"]
    assert d.unknown == {"WebcastSomethingNew": 1}
    assert sum(d.malformed.values()) == 4
    assert d.decode({"no": "messages"}) == []


def test_a_message_without_create_time_takes_the_bundle_time() -> None:
    message = m.chat(ROOM, FAN, "x", NOW)
    del message["data"]["common"]["createTime"]
    (event,) = decoder().decode(m.bundle([message], NOW + 5000))
    assert event.ts == datetime.fromtimestamp((NOW + 5000) / 1000, UTC)


def test_a_bundle_decodes_in_parts_as_it_does_whole() -> None:
    viewer = m.Viewer("v", "6801")
    messages = [m.chat("7001", viewer, f"t{i}", 1_790_000_000_000) for i in range(70)]
    messages.insert(5, {"type": "WebcastChatMessage", "data": {}})  # malformed: counted
    bundle = {"messages": messages}
    whole, sliced = Decoder("host"), Decoder("host")
    parts = list(sliced.parts(bundle, 32))
    assert [len(p) for p in parts] == [31, 32, 7]
    assert [e for p in parts for e in p] == whole.decode(bundle)
    assert sliced.malformed == whole.malformed
    assert sum(whole.malformed.values()) == 1
    assert list(Decoder("host").parts({"messages": []}, 32)) == []


# --- hostile numbers (review M1) ------------------------------------------------------

# Values that are not a number as Euler writes one: Unicode digits, signs and spaces that
# int() would take or choke on, more digits than 64 bits hold, and values of other types.
HOSTILE_NUMBERS: list[object] = [
    "--1",
    "²",
    "١٢٣",
    "+1",
    " 1",
    "1 ",
    "1_0",
    "0x1",
    "-",
    "",
    "1.5",
    "9" * 20,
    "9" * 5000,
    10**19,
    -(10**19),
    1.5,
    True,
    [],
    {},
]
MESSAGES = {
    "chat": lambda: m.chat(ROOM, FAN, "x", NOW),
    "emote": lambda: m.emote(ROOM, FAN, "e1", NOW),
    "gift": lambda: m.gift(ROOM, FAN, "Rose", 1, 5, NOW),
    "join": lambda: m.join(ROOM, FAN, NOW),
    "like": lambda: m.like(ROOM, FAN, 15, NOW),
    "follow": lambda: m.social(ROOM, FAN, "follow", NOW),
    "question": lambda: m.question(ROOM, FAN, "q?", NOW),
    "viewers": lambda: m.viewers(ROOM, 10, NOW),
    "stream_end": lambda: m.stream_end(ROOM, NOW),
}
USER = ("user", "followInfo")
USER_SIDE_FIELDS = (
    (*USER, "followStatus"),
    (*USER, "followerCount"),
    ("user", "userHonor", "level"),
)
# The numeric side fields (they only inform conditions), by the message kinds that
# carry them: a bad one is counted as ignored and read as 0, and the message goes on.
SIDE_FIELDS: list[tuple[str, tuple[str, ...]]] = [
    *(
        (kind, path)
        for kind in ("chat", "emote", "gift", "join", "like", "follow")
        for path in USER_SIDE_FIELDS
    ),
    *(("question", ("details", *path)) for path in USER_SIDE_FIELDS),
    ("like", ("likeCount",)),
    ("follow", ("followCount",)),
    ("follow", ("shareCount",)),
]
# Every other numeric field the decoder reads, by the message kinds that carry it.
NUMERIC_FIELDS: list[tuple[str, tuple[str, ...]]] = [
    *((kind, ("common", "createTime")) for kind in MESSAGES),
    ("gift", ("giftDetails", "giftType")),
    ("gift", ("giftDetails", "diamondCount")),
    ("gift", ("repeatCount",)),
    ("viewers", ("viewerCount",)),
    ("stream_end", ("action",)),
]
ID_FIELDS: list[tuple[str, tuple[str, ...]]] = [
    *((kind, ("common", "msgId")) for kind in MESSAGES),
    *((kind, ("common", "roomId")) for kind in MESSAGES),
    *((kind, ("user", "userId")) for kind in ("chat", "emote", "gift", "join", "like", "follow")),
    ("question", ("details", "user", "userId")),
]
# Ids are never signed: a minus is as hostile there as the rest.
HOSTILE_IDS: list[object] = [v for v in HOSTILE_NUMBERS if v not in ("", 10**19)] + [
    "-1",
    -1,
    "12a",
]


def _set(message: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    node = message["data"]
    for key in path[:-1]:
        node = node[key]
    assert path[-1] in node, path  # the field exists in the fake's messages
    node[path[-1]] = value


def _one_bad_then_good(bad: dict[str, Any]) -> tuple[Decoder, list[str]]:
    d = decoder()
    events = d.decode(m.bundle([bad, m.chat(ROOM, FAN, "next one", NOW)], NOW))
    return d, [e.text for e in events]


@pytest.mark.parametrize("value", HOSTILE_NUMBERS, ids=repr)
@pytest.mark.parametrize(
    ("kind", "path"), NUMERIC_FIELDS, ids=lambda x: ".".join(x) if isinstance(x, tuple) else x
)
def test_a_hostile_number_makes_its_message_malformed_and_the_next_goes_on(kind, path, value):
    bad = MESSAGES[kind]()
    _set(bad, path, value)
    d, texts = _one_bad_then_good(bad)
    assert texts == ["next one"]
    assert sum(d.malformed.values()) == 1
    (reason,) = d.malformed  # names the field, never quotes the value
    assert reason.endswith(f"{path[-1]} must be a whole number of at most 19 digits")


@pytest.mark.parametrize("value", ["", True, 1.5, "²"], ids=repr)
@pytest.mark.parametrize("path", USER_SIDE_FIELDS, ids=".".join)
def test_a_chat_with_a_bad_side_field_keeps_its_text_for_the_rules(path, value):
    """The review's repro: a slur with "followerCount": "" was dropped as malformed, so
    it was never moderated. The side field reads as 0 and is counted as ignored."""
    bad = m.chat(ROOM, FAN, "you are a slurword", NOW)
    bad["data"]["userIdentity"]["isFollowerOfAnchor"] = False  # followStatus alone says
    _set(bad, path, value)
    d = decoder()
    (event,) = d.decode(m.bundle([bad], NOW))
    assert event.kind == "comment"
    assert event.text == "you are a slurword"
    assert event.user is not None
    assert event.user.user_id == FAN.user_id
    side = {
        "followStatus": (event.user.is_follower, event.user.is_friend),
        "followerCount": event.user.follower_count,
        "level": event.user.gifter_level,
    }
    expected = {"followStatus": (False, False), "followerCount": 0, "level": 0}
    assert side[path[-1]] == expected[path[-1]]
    assert dict(d.malformed) == {f"{'.'.join(path)} ignored": 1}


@pytest.mark.parametrize("value", HOSTILE_NUMBERS, ids=repr)
@pytest.mark.parametrize(
    ("kind", "path"), SIDE_FIELDS, ids=lambda x: ".".join(x) if isinstance(x, tuple) else x
)
def test_a_hostile_side_field_is_counted_as_ignored_and_its_message_kept(kind, path, value):
    bad = MESSAGES[kind]()
    _set(bad, path, value)
    d = decoder()
    events = d.decode(m.bundle([bad, m.chat(ROOM, FAN, "next one", NOW)], NOW))
    assert [e.kind for e in events] == [{"chat": "comment"}.get(kind, kind), "comment"]
    assert sum(d.malformed.values()) == 1
    (reason,) = d.malformed  # names the field, never quotes the value
    assert reason.endswith(f".{path[-1]} ignored" if "user" in path else f" {path[-1]} ignored")


def test_a_like_with_a_bad_count_is_a_like_of_0() -> None:
    bad = m.like(ROOM, FAN, 15, NOW)
    _set(bad, ("likeCount",), "--1")
    d = decoder()
    (event,) = d.decode(m.bundle([bad], NOW))
    assert (event.kind, event.count) == ("like", 0)
    assert dict(d.malformed) == {"like likeCount ignored": 1}


@pytest.mark.parametrize("value", HOSTILE_IDS, ids=repr)
@pytest.mark.parametrize(
    ("kind", "path"), ID_FIELDS, ids=lambda x: ".".join(x) if isinstance(x, tuple) else x
)
def test_a_hostile_id_makes_its_message_malformed_and_the_next_goes_on(kind, path, value):
    bad = MESSAGES[kind]()
    _set(bad, path, value)
    d, texts = _one_bad_then_good(bad)
    assert texts == ["next one"]
    assert sum(d.malformed.values()) == 1


@pytest.mark.parametrize("value", HOSTILE_IDS, ids=repr)
def test_a_hostile_room_info_id_is_malformed_and_the_next_goes_on(value):
    info = m.room_info(ROOM, OWNER, NOW)
    info["data"]["roomId"] = info["data"]["id"] = value
    d = Decoder("host")
    events = d.decode(m.bundle([info, m.chat(ROOM, FAN, "next one", NOW)], NOW))
    assert [e.text for e in events] == ["next one"]
    assert sum(d.malformed.values()) == 1


@pytest.mark.parametrize("value", [v for v in HOSTILE_NUMBERS if v is not True], ids=repr)
def test_a_hostile_bundle_timestamp_is_counted_and_its_messages_still_decoded(value):
    d = decoder()
    bundle = m.bundle([m.chat(ROOM, FAN, "first", NOW), m.chat(ROOM, FAN, "next one", NOW)], NOW)
    bundle["timestamp"] = value
    events = d.decode(bundle)
    assert [e.text for e in events] == ["first", "next one"]
    assert events[0].ts == datetime.fromtimestamp(NOW / 1000, UTC)
    assert dict(d.malformed) == {"bundle timestamp must be a whole number of at most 19 digits": 1}


def test_numbers_as_euler_writes_them_are_read_exactly() -> None:
    """Strings of ASCII digits or JSON integers, a minus where a number has one, up to 19
    digits; ids up to 19 digits as strings, kept as sent."""
    message = m.gift(ROOM, FAN, "Rose", 1, 5, NOW)
    _set(message, ("giftDetails", "diamondCount"), "9223372036854775807")
    _set(message, ("repeatCount",), "-3")  # a count below 1 counts once
    _set(message, ("user", "followInfo", "followerCount"), -(10**19) + 1)
    _set(message, ("common", "msgId"), "9" * 19)
    (event,) = decoder().decode(m.bundle([message], NOW))
    assert event.gift is not None
    assert (event.gift.diamonds, event.gift.count) == (9223372036854775807, 1)
    assert event.user is not None
    assert event.user.follower_count == -(10**19) + 1
    assert event.msg_id == "9" * 19


def test_true_as_a_bundle_timestamp_is_counted_too() -> None:
    d = decoder()
    bundle = m.bundle([m.chat(ROOM, FAN, "still here", NOW)], NOW)
    bundle["timestamp"] = True
    assert [e.text for e in d.decode(bundle)] == ["still here"]
    assert sum(d.malformed.values()) == 1


def test_an_event_takes_all_but_kind_time_and_streamer_by_name() -> None:
    """text/language and count/viewers share their types: a swap by position is refused."""
    when = datetime.fromtimestamp(NOW / 1000, UTC)
    event = Event("viewers", when, "host", viewers=12, count=3)
    assert (event.viewers, event.count) == (12, 3)
    positional: Any = Event
    with pytest.raises(TypeError, match="positional"):
        positional("comment", when, "host", ROOM, "1", None, "hello", "en")
