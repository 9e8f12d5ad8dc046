"""Token answers and the token file are hostile until checked: sane lifetimes, header-safe tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modbot.errors import ConfigError
from modbot.euler.oauth import TokenStore
from modbot.euler.tokens import TokenSet, token_set_from_answer

NOW = 1_800_000_000.0


def _answer(**changes: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "access_token": "at-" + "a" * 20,
        "refresh_token": "rt-" + "r" * 20,
        "expires_in": 3600,
        "refresh_expires_in": 30 * 86400,
        "scopes": ["webcast:mute"],
    }
    answer.update(changes)
    return answer


class TestLifetimes:
    @pytest.mark.parametrize(
        "value",
        [
            float("nan"),
            float("inf"),
            float("-inf"),
            json.loads("1e400"),  # Infinity by another name
            10**400,  # too big for a float
            -1,
            0,
            -0.0,
            11 * 365 * 86400,  # more than ten years
            True,
            "nan",
            "Infinity",
            " 3600",
            "1_000",
            "٣٦٠٠",  # Arabic-Indic digits
            "--1",
            [3600],
            {"s": 3600},
        ],
        ids=repr,
    )
    @pytest.mark.parametrize("field", ["expires_in", "refresh_expires_in"])
    def test_absurd_lifetime_is_refused(self, field: str, value: object):
        """NaN, infinities, negative, zero, over ten years, bools and odd strings are refused."""
        with pytest.raises(ValueError, match=field):
            token_set_from_answer(_answer(**{field: value}), NOW)

    @pytest.mark.parametrize(
        ("value", "seconds"), [(3600, 3600.0), (3599.5, 3599.5), ("3600", 3600.0), (1, 1.0)]
    )
    def test_sane_lifetimes_are_read(self, value: object, seconds: float):
        """Whole or fractional seconds, and a plain ASCII digit string, are accepted."""
        tokens = token_set_from_answer(_answer(expires_in=value), NOW)
        assert tokens.expires_at == NOW + seconds
        assert tokens.issued_at == NOW

    def test_a_missing_lifetime_means_an_hour(self):
        """No expires_in is Euler's documented hour; no refresh_expires_in is unknown."""
        answer = _answer()
        del answer["expires_in"], answer["refresh_expires_in"]
        tokens = token_set_from_answer(answer, NOW)
        assert tokens.expires_at == NOW + 3600
        assert tokens.refresh_expires_at is None


class TestTokensAreHeaderSafe:
    @pytest.mark.parametrize(
        "token",
        [
            "tok\r\nX-Evil: 1",
            "tok\nX-Evil: 1",
            "tok\x00",
            "tok en",
            "tok\t",
            "tök",
            "tok\x7f",
            "",
            "a" * 8193,
            None,
            12345,
        ],
        ids=repr,
    )
    @pytest.mark.parametrize("field", ["access_token", "refresh_token"])
    def test_a_token_that_is_not_visible_ascii_is_refused(self, field: str, token: object):
        """CR, LF, NUL, spaces, non-ASCII or a huge value could forge a header: refused."""
        with pytest.raises(ValueError, match=field) as caught:
            token_set_from_answer(_answer(**{field: token}), NOW)
        if isinstance(token, str) and token:
            assert token not in str(caught.value)  # a token is never quoted

    def test_a_token_type_with_a_line_break_is_refused(self):
        """token_type is no way into a header either."""
        with pytest.raises(ValueError, match="token_type"):
            token_set_from_answer(_answer(token_type="Bearer\r\nX: 1"), NOW)

    def test_scopes_of_the_wrong_type_are_a_value_error(self):
        """A scopes field that is a number is a ValueError (a BadResponse), not a TypeError."""
        with pytest.raises(ValueError, match="scopes"):
            token_set_from_answer(_answer(scopes=7), NOW)


class TestTokenFile:
    def _write(self, store: TokenStore, text: str) -> None:
        store.path.parent.mkdir(parents=True, exist_ok=True)
        store.path.write_text(text)
        store.path.chmod(0o600)

    def _stored(self, **changes: Any) -> str:
        data: dict[str, Any] = {
            "access_token": "at-1234",
            "refresh_token": "rt-5678",
            "expires_at": NOW,
            "refresh_expires_at": NOW + 86400,
            "scopes": ["webcast:mute"],
        }
        data.update(changes)
        return json.dumps(data)

    @pytest.mark.parametrize(
        "text",
        [
            '{"access_token": "at-1234", "refresh_token": "rt-5678", "expires_at": NaN}',
            '{"access_token": "at-1234", "refresh_token": "rt-5678", "expires_at": Infinity}',
            '{"access_token": "at-1234", "refresh_token": "rt-5678", "expires_at": 1e400}',
            '{"access_token": "at-1", "refresh_token": "rt-5", "expires_at": 1, "refresh_expires_at": -Infinity}',
            '{"access_token": "at-1234", "refresh_token": "rt-5678", "expires_at": true}',
            '{"access_token": "at-1234", "refresh_token": "rt-5678", "expires_at": "soon"}',
            '{"access_token": "at\\r\\nX: 1", "refresh_token": "rt-5678", "expires_at": 1}',
            '{"access_token": "at-1", "refresh_token": "rt-5", "expires_at": 1, "scopes": 5}',
            '["not", "an", "object"]',
        ],
    )
    def test_a_hostile_token_file_says_log_in(self, tmp_path: Path, text: str):
        """NaN, infinities, bools, header-breaking tokens: a clear ConfigError, nothing used."""
        store = TokenStore(tmp_path)
        self._write(store, text)
        with pytest.raises(ConfigError, match="auth login"):
            store.load()

    def test_files_without_issued_at_still_load(self, tmp_path: Path):
        """A token file written before issued_at existed is read as before."""
        store = TokenStore(tmp_path)
        self._write(store, self._stored())
        loaded = store.load()
        assert loaded is not None
        assert loaded.issued_at is None
        assert loaded.expires_at == NOW

    def test_a_grant_that_cannot_be_stored_as_json_is_never_written(self, tmp_path: Path):
        """A NaN made by hand is not written as JSON's non-standard NaN."""
        store = TokenStore(tmp_path)
        tokens = TokenSet.from_json(json.loads(self._stored()))
        broken = TokenSet(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=float("nan"),
            refresh_expires_at=None,
        )
        with pytest.raises(ValueError, match="JSON"):
            store.save(broken)
        assert not store.path.exists()


class TestWhichGrantIsNewer:
    def test_the_later_issued_grant_is_newer(self):
        """By issued_at when both have it; the same refresh token is never 'newer'."""
        old = token_set_from_answer(_answer(refresh_token="rt-old-0000"), NOW)
        new = token_set_from_answer(_answer(refresh_token="rt-new-0000"), NOW + 10)
        assert new.newer_than(old)
        assert not old.newer_than(new)
        assert not old.newer_than(old)

    def test_without_issued_at_the_later_expiry_is_newer(self):
        """Files from before issued_at are compared by expiry."""
        old = TokenSet.from_json({"access_token": "a-1", "refresh_token": "r-1", "expires_at": NOW})
        new = token_set_from_answer(_answer(), NOW + 10)
        assert new.newer_than(old)
        assert not old.newer_than(new)
