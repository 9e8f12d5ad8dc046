"""Scenarios script a stream on the fake server; the WebSocket delivers it in order."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from modbot.errors import SourceClosed
from modbot.euler.ws import EulerWebSocket
from modbot.fake.scenario import ScenarioRunner, expand, load_scenario

SCENARIO = """
streamer: {unique_id: scripted_host}
users:
  viewer_1: {nickname: Viewer One, follower: true}
  mod_1: {moderator: true}
timeline:
  - {at: 0, live: true}
  - {at: 0.01, comment: {user: viewer_1, text: hello everyone}}
  - {at: 0.02, gift: {user: viewer_1, name: Rose, diamonds: 1, count: 5}}
  - {at: 0.03, join: {user: mod_1}}
  - {at: 0.04, like: {user: viewer_1, count: 3}}
  - {at: 0.05, follow: {user: viewer_1}}
  - {at: 0.06, question: {user: mod_1, text: "when is the next stream?"}}
  - {at: 0.07, viewers: 42}
  - {at: 0.08, raid: {text: "FOLLOW @spam", accounts: 3, every: 0.001}}
  - {at: 0.09, flood: {user: viewer_1, text: [a, b], count: 4, every: 0.001}}
  - {at: 0.2, live: false}
"""


class TestScenario:
    def test_expand_unrolls_raids_and_floods(self):
        """A raid becomes one comment per fresh account; a flood many from one account."""
        actions = [a for _, a in expand(load_scenario(SCENARIO))]
        raid = [a for a in actions if a.kind == "raid"]
        assert [a.user for a in raid] == ["raider_1", "raider_2", "raider_3"]
        flood = [a.text for a in actions if a.kind == "comment" and a.user == "viewer_1"]
        assert flood == ["hello everyone", "a", "b", "a", "b"]

    def test_unknown_user_is_a_clear_error(self):
        """A step naming a user who is not declared is refused with the step's time."""
        with pytest.raises(ValueError, match="'ghost'"):
            load_scenario(
                {
                    "streamer": {"unique_id": "h"},
                    "timeline": [{"at": 1, "comment": {"user": "ghost", "text": "x"}}],
                }
            )

    @pytest.mark.parametrize(
        ("user", "where"),
        [({"nickname": "x", "admin": True}, "users.v.admin"), ({"follower": "maybe"}, "follower")],
    )
    def test_a_user_with_an_unknown_or_bad_trait_is_refused(self, user, where):
        """The users table takes a viewer's traits only, each of its type."""
        with pytest.raises(ValueError, match=where):
            load_scenario({"streamer": {"unique_id": "h"}, "users": {"v": user}, "timeline": []})

    def test_two_actions_in_one_step_is_an_error(self):
        """Each step does exactly one thing."""
        with pytest.raises(ValueError, match="exactly one action"):
            load_scenario(
                {
                    "streamer": {"unique_id": "h"},
                    "timeline": [{"at": 1, "live": True, "viewers": 3}],
                }
            )

    async def test_scenario_plays_over_the_websocket(self, fake, fake_server):
        """Every scripted event arrives in order, in Euler's v2 shapes, then the stream ends."""
        scenario = load_scenario(SCENARIO)
        runner = ScenarioRunner(fake, scenario, speed=1.0, wait_for_client=5)
        got: list[dict[str, Any]] = []
        closed: list[SourceClosed] = []

        async def consume() -> None:
            await runner.went_live.wait()
            ws = EulerWebSocket(fake_server.ws_url, unique_id="scripted_host", api_key=fake.api_key)
            try:
                async for bundle in ws.bundles():
                    got.extend(bundle["messages"])
            except SourceClosed as exc:
                closed.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(runner.run)
            tg.start_soon(consume)
        types = [m["type"] for m in got]
        assert types[0] == "roomInfo"
        assert types[1:9] == [
            "WebcastChatMessage",
            "WebcastGiftMessage",
            "WebcastMemberMessage",
            "WebcastLikeMessage",
            "WebcastSocialMessage",
            "WebcastQuestionNewMessage",
            "WebcastRoomUserSeqMessage",
            "WebcastChatMessage",
        ]
        assert types[-1] == "WebcastControlMessage"
        comments = [m["data"]["comment"] for m in got if m["type"] == "WebcastChatMessage"]
        assert comments == ["hello everyone", *["FOLLOW @spam"] * 3, "a", "b", "a", "b"]
        raiders = {m["data"]["user"]["userId"] for m in got[8:11]}
        assert len(raiders) == 3
        assert closed[0].code == 4005
        assert runner.delivered == len(got) - 2
        first = got[1]["data"]
        assert first["user"]["uniqueId"] == "viewer_1"
        assert first["userIdentity"]["isFollowerOfAnchor"] is True
        assert int(first["common"]["msgId"]) > 2**53
