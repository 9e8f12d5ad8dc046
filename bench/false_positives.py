"""Dictionary-scale false positives: tests/rules/test_false_positives.py on full lists.

The suite checks the 5,000 most frequent words of nine languages; this runs as many as
asked (130,000 by default), alone and in a sentence, and prints each hit.

    python bench/false_positives.py [--top 130000]

At the 130,000 most frequent words it finds four (143 s on a shared 2-core machine):
``who're`` (en, as whore), and ``ное``, ``ривз``, ``сим`` (ru, as hoe, pube, cum:
Cyrillic letters folded to the Latin ones they look like).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.rules.test_false_positives import LANGUAGES, false_positives


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=130_000)
    args = parser.parse_args()
    start = time.perf_counter()
    hits = sorted(set(false_positives(args.top)))
    for language, word, term in hits:
        print(f"{language}\t{word}\t{term}")
    elapsed = time.perf_counter() - start
    print(
        f"false_positives: {len(hits)} hits in the top {args.top:,} words of"
        f" {len(LANGUAGES)} languages ({elapsed:.0f} s)"
    )


if __name__ == "__main__":
    main()
