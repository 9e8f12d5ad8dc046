"""The copy-paste check's clusters: what links, what it costs, mutated raids (review H2)."""

from __future__ import annotations

import random
from difflib import SequenceMatcher

from hypothesis import given, settings
from hypothesis import strategies as st

from modbot.fake.chatter import PLAIN_WORDS, mutated
from modbot.rules.state import _SIMILARITY, FUZZY_CANDIDATES, KEY_CHARS, LINKS, Clusters

from .util import comment, engine, fired, user

RAID_RULE = """
version: 1
rules:
  - id: raid
    on: comment
    when:
      repeat: {count: 8, within: 30s, per: room, similarity: 0.85}
    then: [comments: {enabled: false, for: 2m}]
"""
RAID = (
    "FOLLOW @raid_king NOW for FREE GIFTS and free coins every single day, the best "
    "giveaway on all of TikTok LIVE, go and tell all your friends about it right now"
)
WORDS = PLAIN_WORDS


def lcs(a: str, b: str) -> int:
    """The longest common subsequence, by the textbook table (the model)."""
    row = [0] * (len(b) + 1)
    for ca in a:
        diagonal = 0
        for j, cb in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if ca == cb else max(row[j], row[j - 1])
            diagonal = above
    return row[-1]


def _model_counts(texts: list[str], similarity: float) -> list[int]:
    """What ``Clusters.add`` answers for each text, by the documented model: a new text
    is compared with every one of the ``FUZZY_CANDIDATES`` most recently used by 2 *
    LCS / (total length), and each text keeps its ``LINKS`` most recent links (its
    first ones in the order their texts were last used, then one for each later text
    that links to it)."""
    order: list[str] = []  # most recently used last
    counts: dict[str, int] = {}
    links: dict[str, list[str]] = {}  # oldest link first
    out = []
    for text in texts:
        if text not in counts:
            near = []
            for other in list(reversed(order))[:FUZZY_CANDIDATES]:
                total = len(text) + len(other)
                if (2 * lcs(text, other) / total if total else 1.0) >= similarity:
                    near.append(other)
                    links[other] = [*links[other], text][-LINKS:]
            links[text] = near[::-1][-LINKS:]
            counts[text] = 0
        else:
            order.remove(text)
        order.append(text)
        counts[text] += 1
        out.append(counts[text] + sum(counts[k] for k in links[text]))
    return out


def _counts(texts: list[str], similarity: float) -> list[int]:
    clusters = Clusters(cap=1000)
    return [
        clusters.add(text, float(now), 1e6, similarity, keep=1000) for now, text in enumerate(texts)
    ]


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(
        st.text(alphabet=st.sampled_from("ab c!é中"), min_size=0, max_size=12), max_size=60
    ),
    similarity=st.sampled_from([0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9]),
)
def test_copy_paste_links_are_what_the_documented_measure_would_link(
    texts: list[str], similarity: float
) -> None:
    assert _counts(texts, similarity) == _model_counts(texts, similarity)


@settings(max_examples=100, deadline=None)
@given(
    texts=st.lists(st.text(alphabet="ab", min_size=3, max_size=8), min_size=40, max_size=100),
    similarity=st.sampled_from([0.5, 0.6, 0.7]),
)
def test_links_past_the_cap_drop_the_oldest_as_the_model_does(
    texts: list[str], similarity: float
) -> None:
    """Texts that link to most others: each gathers more than ``LINKS`` links, and the
    oldest go first (rapidfuzz answers by score, not by when the texts were used)."""
    assert _counts(texts, similarity) == _model_counts(texts, similarity)


@settings(max_examples=100, deadline=None)
@given(
    texts=st.lists(st.text(alphabet="ab", min_size=3, max_size=8), min_size=40, max_size=100),
    similarity=st.sampled_from([0.5, 0.7]),
    keep=st.sampled_from([2, 3, 8]),
)
def test_the_count_stops_at_the_rules_count(texts: list[str], similarity: float, keep: int) -> None:
    """The linked clusters are counted until the rule's count is reached: what ``add``
    answers is the whole count of the text's cluster and its links, capped there."""
    clusters = Clusters(cap=1000)
    for now, text in enumerate(texts):
        seen = clusters.add(text, float(now), 1e6, similarity, keep=keep)
        data = clusters.clusters.data
        times, similar = data[text]
        whole = len(times) + sum(len(data[k][0]) for k in similar or () if k in data)
        assert seen == min(whole, keep)


@settings(max_examples=300, deadline=None)
@given(
    a=st.text(alphabet=st.sampled_from("ab c!"), max_size=30),
    b=st.text(alphabet=st.sampled_from("ab c!"), max_size=30),
)
def test_the_measure_is_never_below_difflibs_ratio(a: str, b: str) -> None:
    """difflib's matching blocks are a common subsequence: whatever linked under
    difflib (the measure before) still links."""
    assert _SIMILARITY(a, b) >= SequenceMatcher(None, a, b, autojunk=False).ratio() - 1e-12


def test_a_pair_exactly_at_the_threshold_links() -> None:
    """2 * 2 / 5 is 0.8: rapidfuzz's own cutoff refuses it (floating point)."""
    clusters = Clusters(cap=10)
    assert clusters.add("aa", 0.0, 30.0, 0.8, keep=8) == 1
    assert clusters.add("aaa", 1.0, 30.0, 0.8, keep=8) == 2
    assert clusters.add("aaaa", 2.0, 30.0, 6 / 7, keep=8) == 2  # 6/7 with "aaa" only


def test_a_mutated_raid_from_distinct_accounts_trips_a_per_room_repeat_rule() -> None:
    """Raid tools change 3-5 characters of each copy to get past exact matching: the
    rule fires at its count, the 8th copy."""
    rng = random.Random(3)
    e = engine(RAID_RULE)
    results = [
        fired(e, comment(mutated(RAID, rng, rng.randint(3, 5)), who=user(i), at=i * 0.01))
        for i in range(12)
    ]
    assert results == [[]] * 7 + [["raid"]] * 5


def test_copies_with_a_tenth_of_their_characters_changed_still_trip_it() -> None:
    """Two copies a tenth apart from the original are about a fifth apart from each
    other; most pairs still reach 0.85, so the rule fires within a few more copies."""
    rng = random.Random(4)
    e = engine(RAID_RULE)
    first = None
    for i in range(40):
        text = mutated(RAID, rng, len(RAID) // 10)
        if fired(e, comment(text, who=user(i), at=i * 0.01)) and first is None:
            first = i + 1
    assert first is not None
    assert first <= 16


def test_varied_ordinary_chat_does_not_trip_it() -> None:
    rng = random.Random(5)
    e = engine(RAID_RULE)
    seen: set[str] = set()
    while len(seen) < 1500:
        seen.add(" ".join(rng.choices(WORDS, k=rng.randint(4, 10))))
    for i, text in enumerate(sorted(seen, key=lambda _: rng.random())):
        assert fired(e, comment(text, who=user(i), at=i * 0.01)) == [], text


def test_a_text_that_comes_back_is_the_newest_link_again() -> None:
    """The text "aaaa" is dropped from the table (cap 5) while "aaab" still lists it;
    when it comes back and links to "aaab" again, it is the last link there (the first
    to go past the cap would otherwise be the newest)."""
    clusters = Clusters(cap=5)
    texts = ["aaaa", "aaab", "aabb", "zzzz", "aaab", "aabb", "yyyy", "xxxx"]
    for now, text in enumerate(texts):
        clusters.add(text, float(now), 1e6, 0.7, keep=8)
    assert "aaaa" not in clusters.clusters.data
    assert list(clusters.clusters.data["aaab"][1] or ()) == ["aaaa", "aabb"]
    clusters.add("aaaa", 8.0, 1e6, 0.7, keep=8)
    assert list(clusters.clusters.data["aaab"][1] or ()) == ["aabb", "aaaa"]


def test_a_text_repeated_among_mutated_copies_keeps_a_bounded_number_of_links() -> None:
    """A raid tool that sends one copy word for word between mutated ones: nearly every
    copy links back to it. Its links stay at ``LINKS`` (counting thousands made that raid
    cost 114 us a comment compiled, against 3.3), and the raid still trips the rule."""
    rng = random.Random(6)
    clusters = Clusters(cap=4096)
    totals = []
    for i in range(3000):
        text = RAID if i % 2 else mutated(RAID, rng, rng.randint(3, 5))
        totals.append(clusters.add(text, i / 1000, 30.0, 0.85, keep=8))
    similar = clusters.clusters.data[RAID[:KEY_CHARS]][1]
    assert similar is not None
    assert len(similar) == LINKS
    assert max(len(c[1] or ()) for c in clusters.clusters.data.values()) <= LINKS
    assert totals[7:] == [t for t in totals[7:] if t >= 8]  # every copy from the 8th on


def test_a_long_comment_costs_bounded_work() -> None:
    """A 10,000-character raid copy is known by its first KEY_CHARS characters and
    compared with at most FUZZY_CANDIDATES texts, so its cost does not grow with it."""
    rng = random.Random(6)
    base = " ".join(rng.choices(WORDS, k=2500))[:10_000]
    clusters = Clusters(cap=100)
    totals = []
    for i in range(40):
        before = clusters.comparisons
        totals.append(clusters.add(mutated(base, rng, 5), i * 0.01, 30.0, 0.85, keep=8))
        assert clusters.comparisons - before <= FUZZY_CANDIDATES
    assert max(map(len, clusters.clusters.data)) == KEY_CHARS
    assert min(totals[7:]) >= 8  # still a raid: the rule's count from the 8th copy on


def test_a_raid_stops_comparing_once_the_rule_count_is_reached() -> None:
    """Once the room holds enough copies, a new one is compared with count - 1 of them,
    not with every candidate: a mutated raid costs fewer comparisons than chat."""
    rng = random.Random(7)
    clusters = Clusters(cap=1000)
    for i in range(50):
        clusters.add(mutated(RAID, rng, rng.randint(3, 5)), i * 0.01, 30.0, 0.85, keep=8)
    before = clusters.comparisons
    for i in range(50, 150):
        assert clusters.add(mutated(RAID, rng, 4), i * 0.01, 30.0, 0.85, keep=8) == 8
    assert clusters.comparisons - before == 100 * 7
    # The link sets stay as small as the count: nothing grows with the raid.
    assert max(len(c[1] or ()) for c in clusters.clusters.data.values()) <= 2 * 8


def test_ordinary_chat_compares_each_new_text_with_at_most_the_candidates() -> None:
    rng = random.Random(8)
    clusters = Clusters(cap=1000)
    for i in range(200):
        before = clusters.comparisons
        text = " ".join(rng.choices(WORDS, k=6))
        assert clusters.add(text, i * 0.01, 30.0, 0.85, keep=8) == 1
        assert clusters.comparisons - before == min(i, FUZZY_CANDIDATES)


def test_stale_entries_are_not_candidates() -> None:
    clusters = Clusters(cap=1000)
    for i in range(10):
        clusters.add(f"follow @raider now {i}", float(i), 30.0, 0.85, keep=8)
    before = clusters.comparisons
    assert clusters.add("follow @raider now x", 100.0, 30.0, 0.85, keep=8) == 1
    assert clusters.comparisons == before  # all ten had left the window


def test_texts_that_share_their_first_key_chars_are_one_text() -> None:
    clusters = Clusters(cap=10)
    head = "a" * KEY_CHARS
    assert clusters.add(head + "one tail", 0.0, 30.0, 1.0, keep=8) == 1
    assert clusters.add(head + "another, longer tail", 1.0, 30.0, 1.0, keep=8) == 2
    assert list(clusters.clusters.data) == [head]


def test_a_count_of_one_compares_nothing() -> None:
    clusters = Clusters(cap=10)
    for i in range(5):
        assert clusters.add(f"hello there {i}", float(i), 30.0, 0.85, keep=1) == 1
    assert clusters.comparisons == 0


def test_a_cluster_keeps_only_the_count_its_rule_needs() -> None:
    clusters = Clusters(cap=10)
    totals = [clusters.add("same text", float(t), 30.0, 0.85, keep=4) for t in range(100)]
    assert totals[:5] == [1, 2, 3, 4, 4]  # capped: the rule fires at 4 all the same
    assert len(clusters.clusters.data["same text"][0]) == 4
    assert clusters.add("same text", 140.0, 30.0, 0.85, keep=4) == 1  # the old ones expired


def test_texts_kept_before_a_reload_lowered_the_similarity_are_still_compared() -> None:
    """A cluster made under similarity 1.0 was linked to nothing; a variant after the
    reload still links to it."""
    clusters = Clusters(cap=10)
    assert clusters.add("follow @raider now", 0.0, 30.0, 1.0, keep=8) == 1
    assert clusters.add("follow @raider now!", 1.0, 30.0, 0.85, keep=8) == 2
