"""Settings, validated once at the edge and then passed down as one frozen object.

Sources, highest priority first: keyword arguments (the command line), ``MODBOT_*``
environment variables, an env file named with ``--env-file`` (never a ``.env`` picked up
from the working directory: a downloaded rules pack or repository could carry one that
sends the secrets to another host), systemd credentials (``$CREDENTIALS_DIRECTORY/api-key``
and ``client-secret``), a TOML file given by ``--config`` or ``MODBOT_CONFIG``, then the
defaults, which make a fresh checkout work.

The secrets go only where the operator sent them: plain ``http://`` and ``ws://`` are
refused unless the host is loopback, a file that holds a secret must be private to its
owner (like the token file), and no validator message quotes the value it rejected.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from modbot.errors import ConfigError
from modbot.euler.routes import route_table

ENV_PREFIX = "MODBOT_"
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("modbot_config_file", default=None)

# Credential file name (systemd LoadCredential=) -> setting.
CREDENTIAL_FILES: Mapping[str, str] = {
    "api-key": "api_key",
    "client-secret": "client_secret",
    "client-id": "client_id",
}

_HANDLE = re.compile(r"^[A-Za-z0-9_.]{1,64}$")

DEFAULT_API_BASE_URL = "https://api.eulerstream.com"
DEFAULT_WS_URL = "wss://ws.eulerstream.com"
DEFAULT_AUTHORIZE_URL = "https://www.eulerstream.com/tiktok/oauth/authorize"
# The secure scheme of each URL setting, and the plain one allowed only for loopback.
_URL_SCHEMES: Mapping[str, tuple[str, str]] = {
    "api_base_url": ("https", "http"),
    "ws_url": ("wss", "ws"),
    "authorize_url": ("https", "http"),
}
_URL_HOST = re.compile(r"^[A-Za-z0-9._-]+$")
# Settings that hold a secret: a file that sets one must be private to its owner.
SECRET_SETTINGS = ("api_key", "client_secret")
_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def default_state_dir() -> Path:
    """``$STATE_DIRECTORY`` under systemd (its first entry), else ``./var``."""
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    return Path("var")


class CredentialsSource(PydanticBaseSettingsSource):
    """Secrets from systemd's ``$CREDENTIALS_DIRECTORY`` (``LoadCredential=api-key:...``)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        del field
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            return {}
        found: dict[str, Any] = {}
        for filename, setting in CREDENTIAL_FILES.items():
            path = Path(directory) / filename
            try:
                text = path.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                continue
            except OSError as exc:
                msg = f"cannot read the systemd credential {filename!r}: {exc.strerror}"
                raise ConfigError(msg, setting=setting) from None
            if text:
                found[setting] = text
        return found


class Settings(BaseSettings):
    """Everything modbot can be told. Secrets are ``SecretStr``: their repr is masked."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=None,  # only the file named with --env-file (load_settings)
        env_file_encoding="utf-8",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    api_key: SecretStr | None = Field(default=None, description="Euler developer API key")
    client_id: str | None = Field(default=None, description="Euler OAuth client id")
    client_secret: SecretStr | None = Field(default=None, description="Euler OAuth client secret")
    api_base_url: str = Field(default=DEFAULT_API_BASE_URL, description="Euler API base")
    ws_url: str = Field(default=DEFAULT_WS_URL, description="Euler WebSocket URL")
    authorize_url: str = Field(
        default=DEFAULT_AUTHORIZE_URL, description="the OAuth authorize page"
    )
    routes: dict[str, str] = Field(
        default_factory=dict, description="route name -> path template overrides"
    )
    streamers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="TikTok handles to watch"
    )
    state_dir: Path = Field(default_factory=default_state_dir, description="audit DB and tokens")
    rules_dir: Path = Field(default=Path("rules"), description="the rule files")
    dry_run: bool = Field(default=False, description="decide and audit, call nothing")
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    live_check_interval: float = Field(default=30.0, ge=1.0, le=3600.0)
    http_timeout: float = Field(default=10.0, gt=0, le=120.0)
    max_attempts: int = Field(default=5, ge=1, le=20)
    max_retry_wait: float = Field(default=60.0, ge=0, le=3600.0)
    # The HTTP library of the API calls: httpx's own (httpcore, h11) or aiohttp
    # (modbot.euler.aio; optional: pip install 'modbot[aiohttp]').
    http_transport: Literal["httpcore", "aiohttp"] = "httpcore"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        del file_secret_settings
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            dotenv_settings,
            CredentialsSource(settings_cls),
        ]
        config_file = _CONFIG_FILE.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @field_validator("streamers", mode="before")
    @classmethod
    def _split_streamers(cls, value: object) -> object:
        if isinstance(value, str):
            return [part for part in re.split(r"[\s,]+", value) if part]
        return value

    @field_validator("streamers")
    @classmethod
    def _check_handles(cls, value: list[str]) -> list[str]:
        handles: list[str] = []
        for number, raw in enumerate(value, start=1):
            handle = raw.strip().removeprefix("@")
            if not _HANDLE.match(handle):
                # Not quoted back: a value pasted into the wrong variable may be a secret.
                msg = (
                    f"entry {number} of {len(value)} is not a TikTok handle "
                    "(1 to 64 letters, digits, '_' and '.', with or without a leading @)"
                )
                raise ValueError(msg)
            if handle.lower() not in (h.lower() for h in handles):
                handles.append(handle)
        return handles

    @field_validator("http_transport")
    @classmethod
    def _check_transport(cls, value: str) -> str:
        if value == "aiohttp" and importlib.util.find_spec("aiohttp") is None:
            msg = "aiohttp is not installed (pip install 'modbot[aiohttp]'), or choose httpcore"
            raise ValueError(msg)
        return value

    @field_validator("routes")
    @classmethod
    def _check_routes(cls, value: dict[str, str]) -> dict[str, str]:
        route_table(value)
        return value

    @field_validator("api_base_url", "ws_url", "authorize_url")
    @classmethod
    def _check_url(cls, value: str, info: ValidationInfo) -> str:
        secure, plain = _URL_SCHEMES[info.field_name or "api_base_url"]
        return check_url(value, secure=secure, plain=plain)

    def require(self, *names: str) -> None:
        """Raise a ConfigError naming the first of ``names`` that is not set."""
        for name in names:
            if getattr(self, name) is None:
                env = ENV_PREFIX + name.upper()
                credential = next((f for f, s in CREDENTIAL_FILES.items() if s == name), None)
                where = f"set {env}"
                if credential:
                    where += f", the systemd credential {credential!r}"
                where += f" or {name!r} in the config file"
                msg = f"the setting {name!r} is required for this command: {where}"
                raise ConfigError(msg, setting=name)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(value: str, *, secure: str, plain: str) -> str:
    """``value`` without its trailing slash, if it is an absolute ``secure``:// URL (or a
    ``plain``:// one to a loopback host); else a ValueError that does not quote it."""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        msg = f"it is not a URL (expected {secure}://HOST...)"
        raise ValueError(msg) from None
    if parts.scheme not in (secure, plain) or not host:
        msg = f"it is not an absolute {secure}:// URL ({plain}:// only to a loopback host)"
        raise ValueError(msg)
    if "@" in parts.netloc or not _good_host(host) or re.search(r"\s", value):
        msg = f"it is not a plain {secure}://HOST URL (a host name or address, no user name, password or spaces)"
        raise ValueError(msg)
    if parts.scheme == plain and not is_loopback(host):
        msg = (
            f"{plain}:// is accepted only for a loopback host (localhost, 127.0.0.1, ::1), "
            f"so keys and tokens never cross a network unencrypted; use {secure}://"
        )
        raise ValueError(msg)
    return value.rstrip("/")


def _good_host(host: str) -> bool:
    if _URL_HOST.match(host):
        return True
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def url_host(url: str) -> str:
    """The host (and port, if any) of a URL the settings accepted."""
    return urlsplit(url).netloc


def load_settings(
    config_file: Path | str | None = None,
    *,
    env_file: Path | str | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings from every source, or raise one clear ConfigError.

    ``config_file`` (else ``$MODBOT_CONFIG``) names a TOML file; ``env_file`` a dotenv
    file (``--env-file``; no other is read); ``overrides`` are values from the command
    line and win over everything else.
    """
    path_text = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    path = Path(path_text) if path_text else None
    if path is not None:
        _check_config_file(path)
    extra: dict[str, Any] = {}
    if env_file is not None:
        _check_env_file(Path(env_file))
        extra["_env_file"] = Path(env_file)
    token = _CONFIG_FILE.set(path)
    try:
        return Settings(**extra, **{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_explain(exc), setting=_first_setting(exc)) from None
    finally:
        _CONFIG_FILE.reset(token)


def _refuse_readable_secrets(path: Path, kind: str, keys: list[str]) -> None:
    """A file that holds a secret must be private to its owner (as the token file)."""
    if not keys:
        return
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"cannot read the {kind} {path}: {exc.strerror}") from None
    if mode & _OTHERS:
        names = " and ".join(repr(k) for k in keys)
        msg = (
            f"the {kind} {path} sets {names} but has mode {stat.S_IMODE(mode):04o}, readable "
            f"by others; run `chmod 600 {path}`, or move the secret to a systemd credential "
            "or an environment variable (and consider it exposed)"
        )
        raise ConfigError(msg, setting=keys[0])


def _check_env_file(path: Path) -> None:
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(f"the env file {path} {what}")
    try:
        with path.open(encoding="utf-8") as handle:
            data = dotenv_values(stream=handle)
    except OSError as exc:
        raise ConfigError(f"cannot read the env file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the env file {path} is not UTF-8 text") from None
    keys = {k.upper() for k, v in data.items() if v}
    secret = [name for name in SECRET_SETTINGS if ENV_PREFIX + name.upper() in keys]
    _refuse_readable_secrets(path, "env file", secret)


def _check_config_file(path: Path) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"the config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the config file {path} is not UTF-8 text") from None
    known = set(Settings.model_fields)
    for key in data:
        if key not in known:
            hint = get_close_matches(key, known, n=1)
            tip = f" (did you mean {hint[0]!r}?)" if hint else ""
            msg = f"the config file {path} has an unknown setting {key!r}{tip}"
            raise ConfigError(msg, setting=key)
    _refuse_readable_secrets(path, "config file", [k for k in SECRET_SETTINGS if k in data])


def _first_setting(exc: ValidationError) -> str | None:
    errors = exc.errors()
    if errors and errors[0]["loc"]:
        return str(errors[0]["loc"][0])
    return None


def _explain(exc: ValidationError) -> str:
    """One sentence per problem, naming the setting and its environment variable."""
    parts = []
    for error in exc.errors():
        loc = error["loc"]
        name = str(loc[0]) if loc else "?"
        where = ".".join(str(p) for p in loc)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            hint = get_close_matches(name, list(Settings.model_fields), n=1)
            tip = f" (did you mean {hint[0]!r}?)" if hint else ""
            parts.append(f"unknown setting {name!r}{tip}")
            continue
        # Never echo the rejected input: it may be a secret.
        parts.append(
            f"the setting {where!r} (environment {ENV_PREFIX}{name.upper()}) is invalid: {message}"
        )
    return "; ".join(parts)
