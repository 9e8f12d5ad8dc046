"""Settings from environment, .env, TOML, systemd credentials; one clear sentence when bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from modbot.config import (
    DEFAULT_API_BASE_URL,
    DEFAULT_AUTHORIZE_URL,
    DEFAULT_WS_URL,
    load_settings,
)
from modbot.errors import ConfigError

PASTED_KEY = "sk_live_4f9a2c7e1b3d5a6f8e0c"


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

    def test_dotenv_in_the_working_directory_is_not_read(self, tmp_path):
        """A .env in the working directory (a downloaded rules pack, a repository) is
        ignored: it could send the key, the client secret and the tokens to its own host."""
        (tmp_path / ".env").write_text(
            "MODBOT_API_BASE_URL=http://127.0.0.1:9\nMODBOT_WS_URL=ws://127.0.0.1:9\n"
            "MODBOT_AUTHORIZE_URL=http://127.0.0.1:9/authorize\nMODBOT_CLIENT_ID=from-dotenv\n"
        )
        settings = load_settings()
        assert settings.api_base_url == DEFAULT_API_BASE_URL
        assert settings.ws_url == DEFAULT_WS_URL
        assert settings.authorize_url == DEFAULT_AUTHORIZE_URL
        assert settings.client_id is None

    def test_env_file_when_named(self, tmp_path):
        """--env-file FILE is read (below the environment, above the TOML file)."""
        env = tmp_path / "modbot.env"
        env.write_text("MODBOT_CLIENT_ID=from-env-file\nMODBOT_API_BASE_URL=http://127.0.0.1:9\n")
        config = tmp_path / "c.toml"
        config.write_text('client_id = "from-toml"\nrules_dir = "toml-rules"\n')
        settings = load_settings(config, env_file=env)
        assert settings.client_id == "from-env-file"
        assert settings.api_base_url == "http://127.0.0.1:9"
        assert settings.rules_dir == Path("toml-rules")

    def test_environment_beats_env_file(self, tmp_path, monkeypatch):
        env = tmp_path / "modbot.env"
        env.write_text("MODBOT_CLIENT_ID=from-env-file\n")
        monkeypatch.setenv("MODBOT_CLIENT_ID", "from-environment")
        assert load_settings(env_file=env).client_id == "from-environment"

    def test_missing_env_file(self, tmp_path):
        """A named env file that is not there is an error, not silently nothing."""
        with pytest.raises(ConfigError, match=r"the env file .* does not exist"):
            load_settings(env_file=tmp_path / "nope.env")

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
        config.chmod(0o600)  # it holds a secret
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
        """A streamer handle with spaces or slashes is refused, by its place in the list
        (not quoted: a key pasted into the wrong variable would be printed)."""
        monkeypatch.setenv("MODBOT_STREAMERS", f"good,{PASTED_KEY}/x")
        with pytest.raises(ConfigError, match="entry 2 of 2 is not a TikTok handle") as info:
            load_settings()
        assert PASTED_KEY not in str(info.value)
        assert info.value.setting == "streamers"

    @pytest.mark.parametrize("variable", ["API_BASE_URL", "WS_URL", "AUTHORIZE_URL"])
    @pytest.mark.parametrize(
        "value",
        [PASTED_KEY, f"https://{PASTED_KEY}@api.example.com", f"https://x/{PASTED_KEY} y"],
    )
    def test_a_key_pasted_into_a_url_setting_is_not_echoed(self, monkeypatch, variable, value):
        monkeypatch.setenv(f"MODBOT_{variable}", value)
        with pytest.raises(ConfigError) as info:
            load_settings()
        message = str(info.value)
        assert f"MODBOT_{variable}" in message
        assert PASTED_KEY not in message
        assert PASTED_KEY[:8] not in message

    @pytest.mark.parametrize(
        ("setting", "value"),
        [
            ("api_base_url", "http://api.example.com"),
            ("api_base_url", "http://10.0.0.5:8080"),
            ("ws_url", "ws://ws.example.com"),
            ("authorize_url", "http://www.example.com/oauth/authorize"),
            ("api_base_url", "http://localhost.example.com"),
            ("api_base_url", "http://127.0.0.1.nip.io"),
        ],
    )
    def test_plain_http_to_a_host_that_is_not_loopback_is_refused(self, setting, value):
        """Keys and tokens never cross a network unencrypted."""
        with pytest.raises(ConfigError, match="accepted only for a loopback host") as info:
            load_settings(**{setting: value})
        assert info.value.setting == setting
        assert value.split("://")[1] not in str(info.value)

    @pytest.mark.parametrize(
        ("setting", "value"),
        [
            ("api_base_url", "http://127.0.0.1:8080/"),
            ("api_base_url", "http://localhost:8080"),
            ("ws_url", "ws://[::1]:9000"),
            ("ws_url", "ws://127.0.0.2:9000"),
            ("authorize_url", "http://127.0.0.1:1/tiktok/oauth/authorize"),
            ("api_base_url", "https://api.example.com/v2/"),
        ],
    )
    def test_loopback_may_be_plain(self, setting, value):
        assert getattr(load_settings(**{setting: value}), setting) == value.rstrip("/")

    @pytest.mark.parametrize(
        ("setting", "value"),
        [("ws_url", "https://ws.eulerstream.com"), ("api_base_url", "wss://api.eulerstream.com")],
    )
    def test_each_url_setting_has_its_scheme(self, setting, value):
        with pytest.raises(ConfigError, match="is not an absolute"):
            load_settings(**{setting: value})

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
        config.chmod(0o600)
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


class TestSecretFiles:
    """A file that holds the API key or the client secret must be private to its owner,
    like the token file (review L8: install.sh installs modbot.toml 0644)."""

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
    def test_a_readable_toml_file_with_a_secret_is_refused(self, tmp_path, mode):
        config = tmp_path / "modbot.toml"
        config.write_text(f'client_id = "id"\nclient_secret = "{PASTED_KEY}"\n')
        config.chmod(mode)
        with pytest.raises(ConfigError) as info:
            load_settings(config)
        message = str(info.value)
        assert f"has mode {mode:04o}, readable by others" in message
        assert "'client_secret'" in message
        assert f"chmod 600 {config}" in message
        assert PASTED_KEY not in message
        assert info.value.setting == "client_secret"

    def test_a_private_toml_file_may_hold_a_secret(self, tmp_path):
        config = tmp_path / "modbot.toml"
        config.write_text(f'api_key = "{PASTED_KEY}"\n')
        config.chmod(0o600)
        settings = load_settings(config)
        assert settings.api_key is not None
        assert settings.api_key.get_secret_value() == PASTED_KEY

    def test_a_readable_toml_file_without_secrets_is_fine(self, tmp_path):
        config = tmp_path / "modbot.toml"
        config.write_text('client_id = "not-a-secret"\nstreamers = ["carol"]\n')
        config.chmod(0o644)
        assert load_settings(config).client_id == "not-a-secret"

    @pytest.mark.parametrize(
        "line", [f"MODBOT_API_KEY={PASTED_KEY}", f"modbot_client_secret={PASTED_KEY}"]
    )
    def test_a_readable_env_file_with_a_secret_is_refused(self, tmp_path, line):
        env = tmp_path / "modbot.env"
        env.write_text(f"MODBOT_CLIENT_ID=id\n{line}\n")
        env.chmod(0o644)
        with pytest.raises(ConfigError, match=r"the env file .* has mode 0644") as info:
            load_settings(env_file=env)
        assert PASTED_KEY not in str(info.value)
        env.chmod(0o600)
        assert load_settings(env_file=env).client_id == "id"

    def test_a_readable_env_file_without_secrets_is_fine(self, tmp_path):
        env = tmp_path / "modbot.env"
        env.write_text("MODBOT_CLIENT_ID=id\n")
        env.chmod(0o644)
        assert load_settings(env_file=env).client_id == "id"
