"""Viewer text that tries to act on a terminal or a spreadsheet (review L3), and a check
that a view shows none of it raw. The check is by Unicode category, independent of
``modbot.inert``'s own list."""

from __future__ import annotations

import unicodedata

# name -> text a viewer can send as a nickname, a comment, or an API can put in an error.
PAYLOADS: dict[str, str] = {
    "osc_title": "\x1b]0;pwn\x07",
    "csi_clear": "\x1b[2J\x1b[H",
    "osc8_link": "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
    "osc52_clipboard": "\x1b]52;c;cm0gLXJmIH4=\x07",
    "c1_csi": "\x9b31m",
    "rlo": "evil\u202egnp.exe",
    "arabic_letter_mark": "a\u061cb",
    "bom": "\ufeffadmin",
    "word_joiner": "ad\u2060min",
    "tags": "hi\U000e0041\U000e0042\U000e007f",
    "nul": "a\x00b",
    "line_separator": "a\u2028forged line",
    "isolate": "\u2066x\u2069",
    "newline": "a\nFAKE: forged line",
    "del_bs": "abc\x7f\x08\x08",
}


def raw_invisible(text: str, allowed: str = "") -> list[str]:
    """The characters of ``text`` a terminal would act on or hide (controls, format
    characters, line and paragraph separators, surrogates), except ``allowed``."""
    return [
        f"U+{ord(c):04X}"
        for c in text
        if c not in allowed and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")
    ]
