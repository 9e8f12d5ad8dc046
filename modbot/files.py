"""Private files in the state directory: written atomically, mode 0600, directory 0700."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from modbot.errors import ConfigError


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; only the owner can read it, ever."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(directory)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_state_dir(directory: Path) -> str | None:
    """Refuse a state directory another user owns or can write; a warning (returned) if
    others can list it.

    The audit DB and the token file inside are 0600 whatever the directory's mode; a
    directory another user can write (even a sticky one such as ``/tmp``, where they can
    create the files before modbot does) or owns lets them plant or replace those files,
    so no command that opens it goes on.
    """
    try:
        info = directory.stat()
    except FileNotFoundError:
        return None  # created 0700 on first use
    except OSError as exc:
        msg = f"cannot use the state directory {directory}: {exc.strerror}"
        raise ConfigError(msg, setting="state_dir") from None
    mode = info.st_mode
    if not stat.S_ISDIR(mode):
        raise ConfigError(
            f"the state directory {directory} is not a directory", setting="state_dir"
        )
    uid = os.geteuid()
    if info.st_uid != uid:
        msg = (
            f"the state directory {directory} belongs to uid {info.st_uid}, not to uid {uid} "
            "that runs this command: its owner can replace the audit log and the tokens in "
            "it; run modbot as its owner (for the service: `sudo modbotctl ...`) or choose "
            "another --state-dir"
        )
        raise ConfigError(msg, setting="state_dir")
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        msg = (
            f"the state directory {directory} has mode {stat.S_IMODE(mode):04o}: others can "
            "plant or replace the audit log and the tokens in it (a sticky bit does not stop "
            f"them creating those files first); run `chmod 700 {directory}`"
        )
        raise ConfigError(msg, setting="state_dir")
    if mode & stat.S_IRWXO:
        return (
            f"the state directory {directory} has mode {stat.S_IMODE(mode):04o}: others can "
            f"list it (its files are 0600); `chmod 700 {directory}` closes it"
        )
    return None
