"""The API client's pools: calls spread over small pools, each slot given back once."""

from __future__ import annotations

import socket

import httpx
import pytest

from modbot.euler.pool import PoolShards

pytestmark = pytest.mark.anyio


class TestPoolShards:
    async def test_open_responses_spread_over_the_pools_and_close_back_to_none(self, fake_server):
        """Each request goes to the pool with the fewest in flight (a response counts
        until its body is closed), so eight open responses are two per pool of four."""
        shards = PoolShards(4, 2)
        async with httpx.AsyncClient(transport=shards, base_url=fake_server.url) as http:
            responses = []
            for _ in range(8):
                responses.append(await http.send(http.build_request("GET", "/"), stream=True))
                assert max(shards.in_flight) - min(shards.in_flight) <= 1
            assert shards.in_flight == [2, 2, 2, 2]
            for response in responses:
                await response.aread()
                await response.aclose()
                await response.aclose()  # a second close gives nothing back twice
            assert shards.in_flight == [0, 0, 0, 0]
            # The connections stay open for the next calls: one more call reuses one.
            answer = await http.get("/")
            assert answer.status_code in (401, 404)
            assert shards.in_flight == [0, 0, 0, 0]

    async def test_a_call_that_cannot_connect_gives_its_slot_back(self):
        """A transport error is httpx's own (the client maps it once) and frees the slot."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # closed again: nothing listens there
        shards = PoolShards(2, 1)
        async with httpx.AsyncClient(transport=shards) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{port}/")
        assert shards.in_flight == [0, 0]

    def test_a_pool_needs_a_connection(self):
        with pytest.raises(ValueError, match="at least one pool of at least one connection"):
            PoolShards(0, 8)
