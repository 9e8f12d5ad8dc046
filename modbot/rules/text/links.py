"""Links in chat (pure): URLs, bare domains and the spelled-out forms that dodge filters."""

from __future__ import annotations

import re
from collections.abc import Iterable

from modbot.rules.text.normalize import fold
from modbot.rules.text.tables import TLDS

_SCHEME = re.compile(r"(?i)\b(?:https?|hxxps?)://([^\s/?#:]+)")
_DOT_WORDS = re.compile(r"(?i)\s*(?:[\[\(\{<]\s*(?:\.|dot)\s*[\]\)\}>]|\bdot\b|\(\.\)|\s\.\s)\s*")
_SPACED = re.compile(r"(?<![^\s])(?:[\w.]\s){3,}[\w.](?![^\s])")
_DOMAIN = re.compile(
    r"(?<![\w@.-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,24}))(?![\w-])"
)


def find_links(text: str, folded: str | None = None) -> list[str]:
    """Domains linked in ``text``: URLs, bare domains and spelled-out forms.

    Catches ``https://x.com/a``, ``example.com``, ``example dot com``,
    ``example[.]com``, ``example (dot) com`` and ``e x a m p l e . c o m``. ``folded``
    is ``fold(text)`` when the caller has it.
    """
    if folded is None:
        folded = fold(text)
    if "." not in folded and "dot" not in folded and "://" not in folded:
        return []  # every form below needs a dot, the word "dot" or a scheme
    found: list[str] = [m.group(1).lower().strip(".") for m in _SCHEME.finditer(folded)]
    glued = _SPACED.sub(lambda m: m.group(0).replace(" ", ""), folded)
    dotted = _DOT_WORDS.sub(".", glued)
    for candidate in (folded, dotted):
        found.extend(m.group(1) for m in _DOMAIN.finditer(candidate) if m.group(2) in TLDS)
    unique: list[str] = []
    for domain in found:
        if domain and domain not in unique:
            unique.append(domain)
    return unique


def domain_allowed(domain: str, allow: Iterable[str]) -> bool:
    """Whether ``domain`` is an allowed domain or one of its subdomains."""
    domain = domain.lower().removeprefix("www.")
    for allowed in allow:
        a = allowed.lower().strip().removeprefix("www.").strip(".")
        if domain == a or domain.endswith("." + a):
            return True
    return False
