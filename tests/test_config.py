"""Settings from environment, .env, TOML, systemd credentials; one clear sentence when bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from modbot.config import load_settings
from modbot.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No MODBOT_ variables or .env from the developer's machine leak into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("MODBOT_") or name in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


class TestSources:
    def test_defaults_make_a_fresh_checkout_work(self):
        """With nothing set, state goes to ./var and rules come from ./rules."""
        settings = load_settings()
        assert settings.state_dir == Path("var")
        assert settings.rules_dir == Path("rules")
        assert settings.api_base_url == "https://api.eulerstream.com"
        assert not settings.dry_run

    def test_state_directory_from_systemd(self, monkeypatch):
        """Under systemd, $STATE_DIRECTORY is the default state directory."""
        monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/modbot")
        assert load_settings().state_dir == Path("/var/lib/modbot")

    def test_environment(self, monkeypatch):
        """MODBOT_* variables set settings; streamers may be comma separated."""
        monkeypatch.setenv("MODBOT_API_KEY", "env-key-1234")
        monkeypatch.setenv("MODBOT_STREAMERS", "@alice, bob")
        monkeypatch.setenv("MODBOT_DRY_RUN", "true")
        settings = load_settings()
        assert settings.api_key is not None
        assert settings.api_key.get_secret_value() == "env-key-1234"
        assert settings.streamers == ["alice", "bob"]
        assert settings.dry_run

    def test_dotenv(self, tmp_path):
        """A .env file in the working directory is read."""
        (tmp_path / ".env").write_text("MODBOT_CLIENT_ID=from-dotenv\n")
        assert load_settings().client_id == "from-dotenv"

    def test_toml_file(self, tmp_path):
        """A TOML file given with --config sets settings, the route table included."""
        config = tmp_path / "modbot.toml"
        config.write_text(
            'streamers = ["carol"]\nlive_check_interval = 15\n'
            '[routes]\nmute = "/v2/rooms/{room_id}/mutes"\n'
        )
        settings = load_settings(config)
        assert settings.streamers == ["carol"]
        assert settings.live_check_interval == 15
        assert settings.routes == {"mute": "/v2/rooms/{room_id}/mutes"}

    def test_config_from_environment_variable(self, tmp_path, monkeypatch):
        """MODBOT_CONFIG names the TOML file when --config is not given."""
        config = tmp_path / "c.toml"
        config.write_text('client_id = "from-toml"\n')
        monkeypatch.setenv("MODBOT_CONFIG", str(config))
        assert load_settings().client_id == "from-toml"

    def test_systemd_credentials(self, tmp_path, monkeypatch):
        """$CREDENTIALS_DIRECTORY/api-key and client-secret provide the secrets."""
        creds = tmp_path / "creds"
        creds.mkdir()
        (creds / "api-key").write_text("cred-api-key\n")
        (creds / "client-secret").write_text("cred-client-secret")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
        settings = load_settings()
        assert settings.api_key is not None
        assert settings.api_key.get_secret_value() == "cred-api-key"
        assert settings.client_secret is not None
        assert settings.client_secret.get_secret_value() == "cred-client-secret"

    def test_priority(self, tmp_path, monkeypatch):
        """Command line beats environment, which beats credentials, which beat the TOML file."""
        config = tmp_path / "c.toml"
        config.write_text('api_key = "toml"\nclient_id = "toml"\nstate_dir = "toml"\n')
        creds = tmp_path / "creds"
        creds.mkdir()
        (creds / "api-key").write_text("cred")
        (creds / "client-id").write_text("cred")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
        monkeypatch.setenv("MODBOT_CLIENT_ID", "env")
        monkeypatch.setenv("MODBOT_STATE_DIR", "env")
        settings = load_settings(config, state_dir=Path("cli"))
        assert settings.state_dir == Path("cli")
        assert settings.client_id == "env"
        assert settings.api_key is not None
        assert settings.api_key.get_secret_value() == "cred"

    def test_repr_hides_secrets(self, monkeypatch):
        """repr() of the settings never shows the API key or the client secret."""
        monkeypatch.setenv("MODBOT_API_KEY", "very-secret-key")
        monkeypatch.setenv("MODBOT_CLIENT_SECRET", "very-secret-client")
        text = repr(load_settings()) + str(load_settings())
        assert "very-secret" not in text


class TestErrors:
    def test_bad_value_names_the_setting(self, monkeypatch):
        """A bad value is one sentence naming the setting and its variable."""
        monkeypatch.setenv("MODBOT_LIVE_CHECK_INTERVAL", "0.5")
        with pytest.raises(ConfigError) as info:
            load_settings()
        message = str(info.value)
        assert "live_check_interval" in message
        assert "MODBOT_LIVE_CHECK_INTERVAL" in message
        assert "\n" not in message
        assert info.value.setting == "live_check_interval"

    def test_bad_handle(self, monkeypatch):
        """A streamer handle with spaces or slashes is refused, naming the handle."""
        monkeypatch.setenv("MODBOT_STREAMERS", "good,bad/handle")
        with pytest.raises(ConfigError, match="bad/handle"):
            load_settings()

    def test_unknown_key_in_toml_suggests(self, tmp_path):
        """A misspelled key in the TOML file gets a did-you-mean."""
        config = tmp_path / "c.toml"
        config.write_text('streamer = ["x"]\n')
        with pytest.raises(ConfigError, match="did you mean 'streamers'"):
            load_settings(config)

    def test_missing_config_file(self, tmp_path):
        """A --config file that does not exist says so."""
        with pytest.raises(ConfigError, match="does not exist"):
            load_settings(tmp_path / "nope.toml")

    def test_broken_toml(self, tmp_path):
        """Invalid TOML is reported with the file name."""
        config = tmp_path / "c.toml"
        config.write_text("streamers = [\n")
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_settings(config)

    def test_route_override_must_keep_placeholders(self, tmp_path):
        """A route override that drops {room_id} is refused with the placeholders needed."""
        config = tmp_path / "c.toml"
        config.write_text('[routes]\nmute = "/mutes"\n')
        with pytest.raises(ConfigError, match=r"\{room_id\}"):
            load_settings(config)

    def test_unknown_route_override(self, tmp_path):
        """A route override for a route that does not exist is refused."""
        config = tmp_path / "c.toml"
        config.write_text('[routes]\nmutes = "/x/{room_id}"\n')
        with pytest.raises(ConfigError, match="unknown route 'mutes'"):
            load_settings(config)

    def test_bad_secret_value_is_not_echoed(self, tmp_path):
        """A rejected value is never quoted back (it may be a secret)."""
        config = tmp_path / "c.toml"
        config.write_text("api_key = 123456789\n")
        with pytest.raises(ConfigError) as info:
            load_settings(config)
        assert "123456789" not in str(info.value)

    def test_require_names_every_way_to_set(self):
        """A missing required setting names the variable, the credential and the config key."""
        with pytest.raises(ConfigError) as info:
            load_settings().require("api_key")
        message = str(info.value)
        assert "MODBOT_API_KEY" in message
        assert "'api-key'" in message
