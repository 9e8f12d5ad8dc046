"""modbot: a rule-driven moderation daemon for TikTok LIVE."""

from modbot.__about__ import __version__

__all__ = ["__version__"]
