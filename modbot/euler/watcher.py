"""Watch streamers: who is live (bulk live check), and one event source per live one (I/O).

Handles are resolved to numeric ids once and cached in the state DB. Liveness is
polled with ``bulk_live_check`` in batches of 50 at ``interval`` (cheap); a WebSocket
is opened only for a streamer who is live, and the streamer goes back to being watched
when the stream ends. Each source acts on close codes as ``policy.after_close`` says:
wait for the next live, reconnect at once, back off with jitter, or stop and say why.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
import anyio.lowlevel
import structlog
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectSendStream

from modbot.errors import (
    ApiError,
    ApiUnavailable,
    NotFound,
    PlanOrScopeDenied,
    SourceClosed,
)
from modbot.euler.decode import Decoder
from modbot.euler.policy import Next, RetryPolicy, after_close
from modbot.euler.ws import EulerWebSocket
from modbot.events import Event
from modbot.streams import send_nowait_or_wait

if TYPE_CHECKING:
    from modbot.audit.handles import Handles
    from modbot.euler.client import EulerClient

log = structlog.get_logger("modbot.watcher")

# Messages of a bundle decoded between turns of the loop (a quiet stream's bundle is
# one part; a raid's bundle of 300 messages is ten).
DECODE_SLICE = 32
RECONNECT_POLICY = RetryPolicy(max_attempts=1_000_000, base_delay=1.0, max_delay=60.0)


class StreamState(Enum):
    WATCHING = "waiting for live"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    STOPPED = "stopped"


@dataclass
class Stream:
    """One watched streamer."""

    handle: str
    user_id: str = ""
    state: StreamState = StreamState.WATCHING
    why: str = ""
    events: int = 0
    connections: int = 0
    malformed: dict[str, int] = field(default_factory=dict)


class WatcherStatistics(NamedTuple):
    streams: int
    live: int
    events: int
    stopped: int


class Arrival(NamedTuple):
    """The events of one WebSocket bundle, handed on together, and when it arrived."""

    events: list[Event]
    received: float  # monotonic seconds


WsFactory = Callable[[str], EulerWebSocket]


class Watcher:
    """Polls liveness and runs one source per live streamer, all in one task group."""

    def __init__(
        self,
        client: EulerClient,
        handles: Sequence[str],
        ws_factory: WsFactory,
        *,
        cache: Handles,
        clock_now: Callable[[], datetime],
        interval: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.monotonic = monotonic
        self.ws_factory = ws_factory
        self.cache = cache  # handle -> user id, kept across restarts
        self.clock_now = clock_now
        self.interval = interval
        self.streams = {h.lower().lstrip("@"): Stream(h.lower().lstrip("@")) for h in handles}

    def statistics(self) -> WatcherStatistics:
        streams = self.streams.values()
        return WatcherStatistics(
            streams=len(self.streams),
            live=sum(1 for s in streams if s.state is StreamState.CONNECTED),
            events=sum(s.events for s in streams),
            stopped=sum(1 for s in streams if s.state is StreamState.STOPPED),
        )

    async def run(
        self,
        sink: MemoryObjectSendStream[Arrival],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        async with sink, anyio.create_task_group() as tg:
            await self._resolve_all()
            task_status.started()
            while True:
                await self._check(tg, sink)
                await anyio.sleep(self.interval)

    async def _resolve_all(self) -> None:
        for stream in self.streams.values():
            await self._resolve(stream)

    async def _resolve(self, stream: Stream) -> None:
        cached = await self.cache.user_id(stream.handle)
        if cached:
            stream.user_id = cached
            return
        try:
            stream.user_id = await self.client.user_id(stream.handle)
        except NotFound:
            stream.state = StreamState.STOPPED
            stream.why = f"TikTok has no account @{stream.handle}; check the streamers setting"
            log.error(  # noqa: TRY400 (an answer, not a crash)
                "streamer.unknown", streamer=stream.handle, message=stream.why
            )
            return
        except ApiError as exc:
            log.warning("streamer.resolve_failed", streamer=stream.handle, error=str(exc))
            return  # tried again at the next check
        await self.cache.save(stream.handle, stream.user_id, self.clock_now())
        log.info("streamer.resolved", streamer=stream.handle, user_id=stream.user_id)

    async def _check(self, tg: TaskGroup, sink: MemoryObjectSendStream[Arrival]) -> None:
        for stream in self.streams.values():
            if not stream.user_id and stream.state is not StreamState.STOPPED:
                await self._resolve(stream)
        waiting = {
            s.user_id: s
            for s in self.streams.values()
            if s.user_id and s.state is StreamState.WATCHING
        }
        if not waiting:
            return
        try:
            live = await self.client.bulk_live_check(list(waiting))
        except PlanOrScopeDenied as exc:
            log.error(  # noqa: TRY400 (an answer, not a crash)
                "live_check.denied",
                error=str(exc),
                message="the grant lacks webcast:bulk_live_check; run `modbot auth login`",
            )
            return
        except ApiError as exc:
            log.warning("live_check.failed", error=str(exc))
            return
        except Exception:  # tried again at the next check: the streams go on meanwhile
            log.exception("live_check.crashed")
            return
        for user_id, status in live.items():
            found = waiting.get(user_id)
            if found is not None and status.is_live:
                found.state = StreamState.CONNECTING
                tg.start_soon(self._source, found, sink.clone())

    async def _source(self, stream: Stream, sink: MemoryObjectSendStream[Arrival]) -> None:
        """Consume one live stream until it ends (then back to watching) or must stop."""
        attempt = 0
        async with sink:
            while True:
                decoder = Decoder(stream.handle)
                ws = self.ws_factory(stream.handle)
                stream.connections += 1
                ended = False
                try:
                    async for bundle in ws.bundles():
                        received = self.monotonic()
                        if stream.state is not StreamState.CONNECTED:
                            stream.state = StreamState.CONNECTED
                            attempt = 0
                            log.info("stream.connected", streamer=stream.handle)
                        ended = await _take(stream, decoder, bundle, Sink(sink, received))
                        if ended:
                            break
                except SourceClosed as closed:
                    nxt, why = after_close(closed.code)
                    log.info("stream.closed", streamer=stream.handle, code=closed.code, why=why)
                except PlanOrScopeDenied as exc:
                    nxt, why = Next.STOP, str(exc)
                except ApiUnavailable as exc:
                    nxt, why = Next.BACKOFF, str(exc)
                except Exception as exc:  # the socket broke in a way nobody foresaw: reconnect
                    log.exception("stream.crashed", streamer=stream.handle)
                    nxt, why = Next.BACKOFF, type(exc).__name__
                if ended:
                    nxt, why = Next.WAIT_LIVE, "the stream ended"
                if nxt is Next.WAIT_LIVE:
                    stream.state = StreamState.WATCHING
                    log.info("stream.waiting", streamer=stream.handle, why=why)
                    return
                if nxt is Next.STOP:
                    stream.state = StreamState.STOPPED
                    stream.why = why
                    log.error("stream.stopped", streamer=stream.handle, why=why)
                    return
                stream.state = StreamState.CONNECTING
                attempt += 1
                if nxt is Next.BACKOFF or attempt > 3:  # reconnecting in a loop: slow down
                    jitter = random.random()  # noqa: S311 (jitter, not a secret)
                    delay = RECONNECT_POLICY.delay(attempt, retry_after=None, jitter=jitter)
                    log.info("stream.backoff", streamer=stream.handle, seconds=round(delay or 0, 1))
                    await anyio.sleep(delay or 60.0)


class Sink(NamedTuple):
    """Where a bundle's events go, and when the bundle arrived."""

    stream: MemoryObjectSendStream[Arrival]
    received: float


async def _pass_on(stream: Stream, decoder: Decoder, bundle: dict[str, Any], sink: Sink) -> bool:
    """Decode a bundle and hand all its events on; whether the stream ended.

    The events travel together, one hand-off for each ``DECODE_SLICE`` messages: a
    raid's bundle of hundreds takes turns with the rest of the daemon (whose calls wait
    for turns of the loop).
    """
    ended = False
    for part, events in enumerate(decoder.parts(bundle, DECODE_SLICE)):
        if part:
            await anyio.lowlevel.checkpoint()
        if events:
            stream.events += len(events)
            await send_nowait_or_wait(sink.stream, Arrival(events, sink.received))
            ended = ended or any(e.kind == "stream_end" for e in events)
    _report_malformed(stream, decoder)
    return ended


async def _take(stream: Stream, decoder: Decoder, bundle: dict[str, Any], sink: Sink) -> bool:
    """``_pass_on``, and a bundle the decoder fails on counted as malformed (logged once)."""
    try:
        return await _pass_on(stream, decoder, bundle, sink)
    except Exception:  # one bundle never stops its stream, or the others
        kind = "bundle"
        if kind not in stream.malformed:
            log.exception("event.malformed", streamer=stream.handle, kind=kind)
        stream.malformed[kind] = stream.malformed.get(kind, 0) + 1
        return False


def _report_malformed(stream: Stream, decoder: Decoder) -> None:
    for kind, count in decoder.malformed.items():
        if kind not in stream.malformed:
            log.warning("event.malformed", streamer=stream.handle, kind=kind)
        stream.malformed[kind] = stream.malformed.get(kind, 0) + count
    decoder.malformed.clear()
