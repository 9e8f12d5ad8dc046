"""What "inert" means for viewer text, in one place (pure).

Viewers choose their nicknames and texts to break bots and terminals. Everything modbot
shows or says that a viewer wrote goes through here: the reply templates (the field is
spoken by the streamer's account), the audit views (a table in a terminal, CSV), and the
console log renderer.

``INVISIBLE`` is every character that shows nothing or changes how the text around it
is shown: C0 and C1 controls and DEL, line and paragraph separators, the bidirectional
embeddings, overrides, isolates and marks (LRM, RLM, ALM), zero-width spaces and
joiners, word joiner and the invisible operators, soft hyphen, the combining grapheme
joiner, Mongolian and Khmer vowel fillers, Hangul fillers, variation selectors,
interlinear annotation controls, the byte-order mark, tag characters, and lone
surrogates (which cannot even be encoded as UTF-8).
"""

from __future__ import annotations

import re
import unicodedata

INVISIBLE_CLASS = (
    "\x00-\x1f\x7f-\x9f"  # C0, DEL, C1
    "\u00ad"  # soft hyphen
    "\u034f"  # combining grapheme joiner
    "\u061c"  # Arabic letter mark
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers
    "\u17b4\u17b5"  # Khmer inherent vowels
    "\u180b-\u180f"  # Mongolian free variation selectors, vowel separator
    "\u200b-\u200f"  # zero-width space, ZWNJ, ZWJ, LRM, RLM
    "\u2028-\u202e"  # line/paragraph separators, embeddings, overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u206f"  # isolates, deprecated format controls
    "\ufe00-\ufe0f"  # variation selectors
    "\ufeff"  # byte-order mark, zero-width no-break space
    "\ufff9-\ufffb"  # interlinear annotation
    "\ud800-\udfff"  # lone surrogates
    "\U0001d173-\U0001d17a"  # musical formatting
    "\U000e0000-\U000e007f"  # tags
    "\U000e0100-\U000e01ef"  # variation selectors supplement
)
INVISIBLE = re.compile(f"[{INVISIBLE_CLASS}]")
# Characters that look like nothing: a text made of them and of invisible ones is blank.
_BLANK_LOOKING = re.compile(f"[\\s{INVISIBLE_CLASS}\u2800\u3000]+")
MAX_MARKS = 2  # combining marks kept on one base character (zalgo is cut to this)


_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """``text`` with lone surrogates (which UTF-8 cannot hold) as U+FFFD; the rest kept."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: empty, spaces, invisible characters, blank look-alikes."""
    return _BLANK_LOOKING.fullmatch(text) is not None or not text


def cap_marks(text: str, most: int = MAX_MARKS) -> str:
    """``text`` with at most ``most`` combining marks on each base character."""
    if not any(unicodedata.combining(c) for c in text):
        return text
    out: list[str] = []
    marks = 0
    for c in text:
        if unicodedata.combining(c):
            marks += 1
            if marks > most:
                continue
        else:
            marks = 0
        out.append(c)
    return "".join(out)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown(text: str, limit: int = 60) -> str:
    """One safe line for a terminal or a spreadsheet: invisible characters as ``?``."""
    return shorten(cap_marks(INVISIBLE.sub("?", text)), limit)


def spoken(text: str, limit: int) -> str:
    """Viewer text to put in a chat message: invisible characters gone, spaces squeezed.

    Line breaks and other separators become one space; the rest of the invisible
    characters are removed, not spaced (``sl<ZWSP>ur`` is ``slur``, as the rules read it).
    """
    words = (INVISIBLE.sub("", word) for word in cap_marks(text).split())
    return shorten(" ".join(word for word in words if word), limit)


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escaped(text: str, keep: str = "") -> str:
    """``text`` whole, each invisible character written as its escape (``\\x1b``,
    ``\\u202e``), except the characters of ``keep``: for log lines, whose reader wants to
    see exactly what a viewer sent, and whose terminal must act on none of it."""
    return INVISIBLE.sub(lambda m: m.group() if m.group() in keep else _escape(m.group()), text)
