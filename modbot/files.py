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
    """Refuse a state directory others can write; a warning (returned) if others can read it.

    The audit DB and the token file inside are 0600 whatever the directory's mode; a
    directory others can write lets them replace those files, so modbot will not run.
    """
    try:
        mode = directory.stat().st_mode
    except FileNotFoundError:
        return None  # created 0700 on first use
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
        msg = (
            f"the state directory {directory} has mode {stat.S_IMODE(mode):04o}: others can "
            f"replace the audit log and the tokens in it; run `chmod 700 {directory}`"
        )
        raise ConfigError(msg, setting="state_dir")
    if mode & stat.S_IRWXO:
        return (
            f"the state directory {directory} has mode {stat.S_IMODE(mode):04o}: others can "
            f"list it (its files are 0600); `chmod 700 {directory}` closes it"
        )
    return None
