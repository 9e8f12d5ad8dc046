"""The http_transport setting: which library carries the API calls, and a clear
ConfigError when it names aiohttp and aiohttp is not installed."""

from __future__ import annotations

import sys

import pytest

from modbot.config import load_settings
from modbot.errors import ConfigError
from modbot.euler.aio import AiohttpTransport
from modbot.euler.session import client_for
from modbot.euler.transport import Pools


def test_the_default_is_httpcore_and_aiohttp_is_chosen_by_the_setting(monkeypatch):
    monkeypatch.delenv("MODBOT_HTTP_TRANSPORT", raising=False)
    assert load_settings().http_transport == "httpcore"
    assert isinstance(client_for(load_settings())._http, Pools)
    monkeypatch.setenv("MODBOT_HTTP_TRANSPORT", "aiohttp")
    settings = load_settings()
    assert settings.http_transport == "aiohttp"
    assert isinstance(client_for(settings)._http, AiohttpTransport)


def test_aiohttp_not_installed_is_a_config_error_naming_the_setting(monkeypatch):
    monkeypatch.setenv("MODBOT_HTTP_TRANSPORT", "aiohttp")
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as if it were not installed
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "http_transport"
    assert "aiohttp is not installed" in str(info.value)
    assert "MODBOT_HTTP_TRANSPORT" in str(info.value)


@pytest.mark.parametrize("bad", ["h11", "AIOHTTP ", ""])
def test_an_unknown_library_is_a_config_error(monkeypatch, bad: str):
    monkeypatch.setenv("MODBOT_HTTP_TRANSPORT", bad)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "http_transport"
