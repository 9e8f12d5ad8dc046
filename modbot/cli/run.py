"""``modbot run`` (the daemon) and ``modbot record`` (a live stream to a JSONL file)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from typing import Any, TextIO, cast

import anyio

from modbot.cli.output import EXIT_OK, open_state_dir
from modbot.cli.progress import Progress, _AboveProgress
from modbot.clock import SystemClock
from modbot.config import Settings
from modbot.errors import ConfigError
from modbot.euler.oauth import TokenStore
from modbot.euler.session import api_session, websocket_factory
from modbot.files import check_state_dir
from modbot.log import configure


def run_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from modbot.daemon import Daemon  # noqa: PLC0415 (the daemon's imports are not needed for other commands)

    update: dict[str, Any] = {}
    if args.dry_run:
        update["dry_run"] = True
    if args.streamers:
        update["streamers"] = [
            h.strip().removeprefix("@") for h in args.streamers.split(",") if h.strip()
        ]
    settings = settings.model_copy(update=update)
    _require_session(settings, "modbot run", streamers=True)
    daemon = Daemon(settings, rule_paths=args.rule_paths)
    del out
    return anyio.run(daemon.run, backend="asyncio")


def _require_session(settings: Settings, command: str, *, streamers: bool = False) -> None:
    """Every setting a command acting through Euler needs and lacks, named at once in
    one ConfigError (rather than one per try), before anything is created on disk."""
    from modbot.config import ENV_PREFIX  # noqa: PLC0415

    missing: list[str] = []
    if streamers and not settings.streamers:
        missing.append(f"streamers ({ENV_PREFIX}STREAMERS=handle1,handle2)")
    missing += [
        f"{name} ({ENV_PREFIX}{name.upper()})"
        for name in ("api_key", "client_id", "client_secret")
        if getattr(settings, name) is None
    ]
    check_state_dir(settings.state_dir)
    if TokenStore(settings.state_dir).load() is None:
        missing.append(f"an OAuth grant in {settings.state_dir} (run `modbot auth login`)")
    if missing:
        msg = (
            f"{command} needs {len(missing)} thing{'s' * (len(missing) != 1)} not set yet: "
            f"{'; '.join(missing)}. Settings come from MODBOT_* variables, --env-file or "
            "--config"
        )
        raise ConfigError(msg, setting=None)


def record_command(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from modbot.audit.handles import Handles  # noqa: PLC0415
    from modbot.audit.store import AuditStore, default_db  # noqa: PLC0415
    from modbot.euler.watcher import Arrival, Watcher  # noqa: PLC0415

    clock = SystemClock()
    handle = args.unique_id.lstrip("@")
    open_state_dir(settings.state_dir)
    _require_session(settings, "modbot record")

    # On a terminal, a progress line on stderr, which log lines are written above.
    progress = Progress(sys.stderr, "recording")
    if progress.enabled:
        level = logging.getLevelName(logging.getLogger().level).lower()  # as main set it
        configure(
            settings.log_format,
            level=level,
            stream=cast("TextIO", _AboveProgress(progress, sys.stderr)),
        )

    async def redraw() -> None:
        while True:  # the elapsed time moves on while the stream is quiet
            progress.tick()
            await anyio.sleep(0.5)

    async def capture(sink: TextIO) -> int:
        written = 0
        send, receive = anyio.create_memory_object_stream[Arrival](1_000)
        async with (
            api_session(settings, clock) as (client, _, _grant),
            AuditStore.open(default_db(settings.state_dir)) as store,
            anyio.create_task_group() as tg,
        ):
            watcher = Watcher(
                client,
                [handle],
                websocket_factory(settings),
                cache=Handles(store),
                clock_now=clock.now,
                interval=settings.live_check_interval,
            )
            tg.start_soon(watcher.run, send)
            if not args.json:
                print(f"Recording @{handle} to {args.output} (waiting until live)...", file=out)
                out.flush()
            if progress.enabled:
                tg.start_soon(redraw)
            with anyio.move_on_after(args.duration or math.inf):
                async with receive:
                    async for events, _ in receive:
                        for event in events:
                            sink.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
                            written += 1
                        progress.step(len(events))
                        if any(event.kind == "stream_end" for event in events):
                            break
            tg.cancel_scope.cancel()
        progress.finish()
        if args.json:
            result = {"streamer": handle, "output": str(args.output), "events": written}
            print(json.dumps(result), file=out)
        else:
            print(f"Recorded {written} events.", file=out)
        return EXIT_OK

    # The output first: a file that cannot be written is said before anything is created.
    with args.output.open("w", encoding="utf-8", buffering=1) as sink, progress:
        return anyio.run(capture, sink, backend="asyncio")
