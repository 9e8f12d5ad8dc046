"""Euler WebSocket messages become modbot's events; bad ones are counted and skipped."""

from __future__ import annotations

from datetime import UTC, datetime

from modbot.euler.decode import Decoder
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
