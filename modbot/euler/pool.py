"""The API client's connections: several small httpx pools behind one transport (I/O).

httpcore walks every connection of its pool each time a request starts and each time
one ends, and asks each idle connection whether its socket became readable (a poll per
connection, through anyio's socket attributes). With the 32 connections the executor
can keep busy in a raid, that walk cost about a millisecond of the event loop per call.
``PoolShards`` keeps the same number of connections in pools of ``per_shard``: each
request goes to the pool with the fewest requests in flight, and only that pool is
walked. Everything else (HTTP/1.1, keep-alive, timeouts, errors as httpx's) is
httpx's own ``AsyncHTTPTransport``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self

import httpx


class PoolShards(httpx.AsyncBaseTransport):
    """``shards`` connection pools of ``per_shard`` connections each, all kept open."""

    def __init__(self, shards: int, per_shard: int) -> None:
        if shards < 1 or per_shard < 1:
            msg = "PoolShards needs at least one pool of at least one connection"
            raise ValueError(msg)
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        self._pools = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(shards)]
        self.in_flight = [0] * shards  # requests sent and not yet closed, per pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        busy = self.in_flight
        shard = busy.index(min(busy))
        busy[shard] += 1
        try:
            response = await self._pools[shard].handle_async_request(request)
        except BaseException:
            busy[shard] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Released(response.stream, self, shard)
        return response

    def release(self, shard: int) -> None:
        self.in_flight[shard] -= 1

    async def __aenter__(self) -> Self:
        for pool in self._pools:
            await pool.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class _Released(httpx.AsyncByteStream):
    """A response body that gives its pool's slot back when it is closed (once)."""

    def __init__(self, inner: httpx.AsyncByteStream, shards: PoolShards, shard: int) -> None:
        self._inner = inner
        self._shards = shards
        self._shard: int | None = shard

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._shard is not None:
                self._shards.release(self._shard)
                self._shard = None
