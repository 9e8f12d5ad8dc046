"""Who a nuke or a raid sweep reaches, and the recent-comment memory it reads (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modbot.actions import nuke as nk
from modbot.actions.recent import MODERATOR, OWNER, RecentComments, Said
from modbot.events import Event, User


def comment(
    t: float,
    user: str,
    text: str,
    *,
    room: str = "7001",
    streamer: str = "host",
    moderator: bool = False,
    owner: bool = False,
) -> Event:
    return Event(
        "comment",
        datetime.fromtimestamp(t, UTC),
        streamer,
        room_id=room,
        msg_id=f"m{t}-{user}",
        user=User(user, f"h{user}", is_moderator=moderator, is_owner=owner),
        text=text,
    )


def said(t: float, user: str, text: str, roles: int = 0) -> Said:
    return Said(t, f"m{t}-{user}", user, f"h{user}", text, roles)


class TestRecentComments:
    def test_only_comments_are_kept_newest_first(self) -> None:
        """since() gives a room's comments after the cutoff, the newest first."""
        recent = RecentComments()
        recent.note(comment(1.0, "a", "one"))
        recent.note(comment(2.0, "b", "two"))
        recent.note(Event("join", datetime.fromtimestamp(3.0, UTC), "host", user=User("c")))
        assert [s.text for s in recent.since("7001", 0.0)] == ["two", "one"]
        assert [s.text for s in recent.since("7001", 1.0)] == ["two"]
        assert list(recent.since("other", 0.0)) == []

    def test_a_room_keeps_at_most_its_count_characters_and_age(self) -> None:
        """The count, the characters and the age bound each push the oldest out."""
        recent = RecentComments(max_comments=3, max_chars=10_000, max_age=100.0)
        for i in range(5):
            recent.note(comment(float(i), str(i), "x"))
        assert [s.user_id for s in recent.since("7001", -1)] == ["4", "3", "2"]
        by_chars = RecentComments(max_comments=100, max_chars=25, max_age=100.0)
        for i in range(5):
            by_chars.note(comment(float(i), str(i), "y" * 10))
        assert by_chars.statistics().chars <= 25
        assert by_chars.statistics().comments == 2
        by_age = RecentComments(max_age=60.0)
        by_age.note(comment(0.0, "old", "hi"))
        by_age.note(comment(61.0, "new", "hi"))
        assert [s.user_id for s in by_age.since("7001", -1)] == ["new"]

    def test_all_rooms_together_keep_at_most_the_total(self) -> None:
        """Past the total, a room over its fair share gives up its oldest comment; a
        quiet room keeps what it has while a busy one fills up."""
        recent = RecentComments(total_comments=10, total_chars=10_000)
        recent.note(comment(0.0, "q1", "quiet", room="quiet"))
        recent.note(comment(0.5, "q2", "quiet", room="quiet"))
        for i in range(50):
            recent.note(comment(1.0 + i, str(i), "busy", room="busy"))
        stats = recent.statistics()
        assert stats.comments == 10
        assert len(list(recent.since("quiet", -1))) == 2
        assert [s.user_id for s in recent.since("busy", -1)][:2] == ["49", "48"]
        by_chars = RecentComments(total_comments=1_000, total_chars=100)
        for i in range(30):
            by_chars.note(comment(float(i), str(i), "z" * 10, room=f"r{i % 3}"))
        assert by_chars.statistics().chars <= 100

    def test_a_long_text_is_kept_to_its_first_characters(self) -> None:
        recent = RecentComments()
        recent.note(comment(1.0, "a", "z" * 10_000))
        (kept,) = recent.since("7001", 0.0)
        assert len(kept.text) == 500

    def test_the_least_recently_active_room_is_forgotten_first(self) -> None:
        recent = RecentComments(max_rooms=2)
        recent.note(comment(1.0, "a", "hi", room="r1"))
        recent.note(comment(2.0, "a", "hi", room="r2"))
        recent.note(comment(3.0, "a", "hi", room="r1"))
        recent.note(comment(4.0, "a", "hi", room="r3"))
        assert recent.rooms_of("host") == ["r1", "r3"]
        assert recent.statistics().forgotten_rooms == 1

    def test_roles_are_remembered(self) -> None:
        recent = RecentComments()
        recent.note(comment(1.0, "m", "hi", moderator=True))
        recent.note(comment(2.0, "o", "hi", owner=True))
        o, m = recent.since("7001", 0.0)
        assert m.roles & MODERATOR
        assert o.roles & OWNER


class TestSelect:
    def test_each_viewer_once_never_moderators_or_the_streamer(self) -> None:
        """A viewer with three matching comments is one target; moderators, the owner
        and the streamer's own handle are spared."""
        sweep = nk.Sweep("host", nk.compile_pattern("free coins").matches, nk.Then("ban"), 0.0)
        comments = [
            said(5.0, "a", "free coins"),
            said(4.0, "a", "FREE COINS!!"),
            said(3.0, "b", "fr33 c0ins"),
            said(2.0, "mod", "free coins", MODERATOR),
            said(1.5, "own", "free coins", OWNER),
            Said(1.2, "x", "999", "HOST", "free coins", 0),
            said(1.0, "c", "coins free"),
        ]
        targets = nk.select(sweep, [("7001", comments)])
        assert [t.said.user_id for t in targets] == ["a", "b"]
        assert targets[0].said.t == 5.0  # the newest matching comment

    def test_a_new_comment_is_reached_until_the_sweep_ends(self) -> None:
        sweep = nk.Sweep("host", nk.compile_pattern("spam").matches, nk.Then("log"), until=10.0)
        assert sweep.offer(said(9.0, "a", "spam"), "host", "7001") is not None
        assert sweep.offer(said(9.5, "a", "spam"), "host", "7001") is None  # once
        assert sweep.offer(said(9.5, "b", "spam"), "other", "9") is None  # another streamer
        assert sweep.offer(said(10.5, "c", "spam"), "host", "7001") is None  # ended

    def test_a_raid_sweep_goes_on_after_each_copy_but_not_past_its_longest(self) -> None:
        near = nk.NearCopies((nk.copy_key("join my raid now"),), 0.8)
        sweep = nk.Sweep(
            "host", near, nk.Then("mute", 300.0), until=30.0, room="7001", extend=30.0,
            longest=50.0,
        )  # fmt: skip
        assert sweep.offer(said(25.0, "a", "join my raid now!!"), "host", "7001") is not None
        assert sweep.until == 50.0
        assert sweep.offer(said(40.0, "b", "JOIN my raid noww"), "host", "7001") is not None
        assert sweep.offer(said(45.0, "c", "something else entirely"), "host", "7001") is None
        assert sweep.offer(said(45.0, "d", "join my raid now"), "host", "other-room") is None
        assert sweep.offer(said(51.0, "e", "join my raid now"), "host", "7001") is None

    def test_a_sweep_reaches_at_most_its_most(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(nk, "MOST_VIEWERS", 3)
        sweep = nk.Sweep("host", nk.compile_pattern("spam").matches, nk.Then("log"), 100.0)
        found = nk.select(sweep, [("7001", [said(1.0, str(i), "spam") for i in range(10)])])
        assert len(found) == 3
        assert sweep.full

    def test_the_cluster_is_the_near_copies_of_the_tipping_text(self) -> None:
        """Near-identical texts (mutated) are in; other chat is not; the tipping comment
        itself is not listed twice."""
        tipping = said(10.0, "t", "JOIN discord gg freestuff for FREE nitro")
        recent = [
            tipping,
            said(9.0, "a", "join discord gg freestuff for free nitro!!"),
            said(8.0, "b", "hello everyone"),
            said(7.0, "c", "JOIN d1scord gg freestuff for FREE nitr0"),
            said(6.0, "d", "what game is this"),
        ]
        near, copies = nk.cluster(recent, tipping, 0.8)
        assert [c.user_id for c in copies] == ["a", "c"]
        assert near(said(11.0, "e", "JOIN discord gg freestuff 4 FREE nitro")) is not None
        assert near(said(11.0, "f", "good night")) is None


class TestPatterns:
    def test_a_phrase_matches_as_text_words_does(self) -> None:
        """The rules' normalisation: leetspeak, separators, case; whole words only."""
        pattern = nk.compile_pattern("free coins")
        for text in ["FREE C0INS", "f.r.e.e coins", "get free coinsss now"]:
            assert pattern.matches(said(1.0, "a", text)) is not None, text
        for text in ["carefree coinstar", "coins free", ""]:
            assert pattern.matches(said(1.0, "a", text)) is None, text

    def test_a_phrase_that_looks_like_a_list_stays_a_phrase(self) -> None:
        pattern = nk.compile_pattern("@everyone")
        assert pattern.matches(said(1.0, "a", "hey @everyone look")) is not None

    def test_a_regex_is_re2_on_the_raw_text(self) -> None:
        pattern = nk.compile_pattern(r"/(?i)bit\.ly/\w+/")
        assert pattern.matches(said(1.0, "a", "see BIT.LY/abc")) is not None
        assert pattern.matches(said(1.0, "a", "see bitly")) is None

    @pytest.mark.parametrize(
        "pattern",
        ["", " ", "x" * 100_000, "/(/", "//", "/.*/", "/x?/", "/" + "a" * 5_000 + "/", "!!!"],
    )
    def test_hostile_patterns_are_refused(self, pattern: str) -> None:
        with pytest.raises(nk.PatternRefused):
            nk.compile_pattern(pattern)
