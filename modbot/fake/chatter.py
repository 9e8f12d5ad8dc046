"""Chat for tests and benches: ordinary words, and raid copies as raid tools make them.

Raid tools do not paste one text a thousand times: they change a few characters of each
copy so that exact-match filters miss it. ``mutated`` does that; ``RAID_TEXT`` is a
150-character raid line that trips the copy-paste rule alone (no scam phrase, link or
shouting), so what it costs is what the copy-paste check adds.
"""

from __future__ import annotations

import random

VOCABULARY = [
    "the",
    "a",
    "you",
    "i",
    "is",
    "it",
    "to",
    "and",
    "of",
    "this",
    "that",
    "what",
    "so",
    "love",
    "game",
    "play",
    "stream",
    "song",
    "nice",
    "wow",
    "lol",
    "haha",
    "omg",
    "yes",
    "no",
    "please",
    "when",
    "where",
    "why",
    "how",
    "who",
    "can",
    "will",
    "next",
    "level",
    "from",
    "brazil",
    "germany",
    "india",
    "hello",
    "hi",
    "welcome",
    "back",
    "again",
    "today",
    "tonight",
    "best",
    "ever",
    "👍",
    "😂",
    "❤️",
    "🔥",
    "🎉",
    "first",
    "time",
    "here",
    "watching",
    "my",
    "friend",
    "team",
    "win",
    "lose",
    "boss",
    "fight",
]
PLAIN_WORDS = [w for w in VOCABULARY if w.isascii()]
RAID_TEXT = (
    "everyone go and follow @raid_king right now, he is the best streamer on all of "
    "tiktok live and he gives something back to every single one of you tonight, go go"
)[:150]
NOISE = "abcdefghijklmnopqrstuvwxyz0123456789!?.@ "


def mutated(text: str, rng: random.Random, changes: int | None = None) -> str:
    """``text`` with ``changes`` (by default 3-5) random characters replaced, inserted or
    deleted."""
    chars = list(text)
    for _ in range(rng.randint(3, 5) if changes is None else changes):
        at = rng.randrange(len(chars))
        how = rng.random()
        if how < 0.6:
            chars[at] = rng.choice(NOISE)
        elif how < 0.8:
            chars.insert(at, rng.choice(NOISE))
        else:
            del chars[at]
    return "".join(chars)
