"""Scripted streams for the fake server: who says what when, going live and offline, raids.

A scenario is YAML (or the same structure built in Python)::

    streamer: {unique_id: host_handle, nickname: The Host}
    users:
      viewer_1: {nickname: Viewer One, follower: true}
      mod_1: {moderator: true}
    timeline:
      - {at: 0, live: true}
      - {at: 1.5, comment: {user: viewer_1, text: hello everyone}}
      - {at: 2, gift: {user: viewer_1, name: Rose, diamonds: 1, count: 5}}
      - {at: 5, raid: {text: "follow me!!", accounts: 20, every: 0.05}}
      - {at: 9, flood: {user: viewer_1, text: spam, count: 8, every: 0.4}}
      - {at: 20, live: false}

Step kinds: ``live``, ``comment``, ``emote``, ``gift``, ``join``, ``like``, ``follow``,
``share``, ``question``, ``viewers``, ``raid`` (one text from many fresh accounts) and
``flood`` (many comments from one account), ``moderator`` (a human moderator of the
room acts as in the TikTok app: ``{user: mod_1, action: mute, target: viewer_1, for: 60}``,
sent as the WebSocket's member message) and ``nuke`` (``modbot nuke`` asked of the
daemon: ``{pattern: "follow me", since: 30, mute: 60}``, run by the ``on_nuke`` hook of
the runner, a step skipped without one). Times are seconds from the start, divided by
``speed`` when run; so are a step's own spans (``for``, ``since``, ``mute``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modbot.fake import messages as msgs
from modbot.fake.messages import Traits, Viewer
from modbot.fake.moderators import moderator_acts
from modbot.fake.server import FakeEuler


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StreamerSpec(_Model):
    unique_id: str
    nickname: str = ""


class TextStep(_Model):
    user: str
    text: str
    language: str = "en"


class UserStep(_Model):
    user: str


class GiftStep(_Model):
    user: str
    name: str = "Rose"
    diamonds: int = 1
    count: int = 1


class LikeStep(_Model):
    user: str
    count: int = 1


class EmoteStep(_Model):
    user: str
    emote_id: str = "7000000000000000001"


class RaidStep(_Model):
    text: str | list[str]
    accounts: int = Field(default=10, ge=1, le=100_000)
    every: float = Field(default=0.1, ge=0)
    prefix: str = "raider"


class ModeratorStep(_Model):
    """A human moderator's action (a name of ``messages.MEMBER_ACTIONS``)
    on ``target`` (a user, or a raider by its name ``raider_N``; none: on the room)."""

    user: str
    action: str
    target: str | None = None
    for_: float | None = Field(default=None, alias="for", gt=0)  # a mute's length

    @model_validator(mode="after")
    def _known_action(self) -> ModeratorStep:
        if self.action not in msgs.MEMBER_ACTIONS:
            known = ", ".join(msgs.MEMBER_ACTIONS)
            msg = f"a moderator's action is one of {known}, not {self.action!r}"
            raise ValueError(msg)
        return self


class NukeStep(_Model):
    """``modbot nuke PATTERN --since SINCE --then "mute MUTE" --for FOR`` (seconds)."""

    pattern: str
    since: float = Field(default=120.0, gt=0)
    mute: float | None = Field(default=300.0, gt=0)  # None: ban
    for_: float = Field(default=0.0, alias="for", ge=0)


class FloodStep(_Model):
    user: str
    text: str | list[str]
    count: int = Field(default=8, ge=1, le=100_000)
    every: float = Field(default=0.5, ge=0)


class Step(_Model):
    """One timeline step: ``at`` and exactly one of the fields below (an event kind of
    :data:`modbot.events.EVENT_KINDS`, or ``live``, ``raid``, ``flood``)."""

    at: float = Field(ge=0)
    live: bool | None = None
    comment: TextStep | None = None
    emote: EmoteStep | None = None
    gift: GiftStep | None = None
    join: UserStep | None = None
    like: LikeStep | None = None
    follow: UserStep | None = None
    share: UserStep | None = None
    question: TextStep | None = None
    viewers: int | None = None
    raid: RaidStep | None = None
    flood: FloodStep | None = None
    moderator: ModeratorStep | None = None
    nuke: NukeStep | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [name for name in self.model_fields_set if name != "at"]
        if len(kinds) != 1:
            msg = f"each timeline step has `at` and exactly one action, got {sorted(kinds)}"
            raise ValueError(msg)
        return self

    @property
    def kind(self) -> str:
        return next(name for name in self.model_fields_set if name != "at")


class Scenario(_Model):
    """A whole scripted stream."""

    name: str = "scenario"
    streamer: StreamerSpec
    users: dict[str, Traits] = Field(default_factory=dict)  # unknown keys are refused
    timeline: list[Step]

    @model_validator(mode="after")
    def _known_users(self) -> Scenario:
        for step in self.timeline:
            action = getattr(step, step.kind)
            user = getattr(action, "user", None)
            if user is not None and user not in self.users:
                msg = f"step at {step.at}s names the user {user!r}, who is not under `users`"
                raise ValueError(msg)
            target = getattr(action, "target", None)
            if target is not None and target not in self.users and not self._raider(target):
                msg = f"step at {step.at}s acts on {target!r}, neither a user nor a raider"
                raise ValueError(msg)
        return self

    def _raider(self, name: str) -> bool:
        prefixes = {step.raid.prefix for step in self.timeline if step.raid is not None}
        head, _, number = name.rpartition("_")
        return head in prefixes and number.isdigit()

    @property
    def duration(self) -> float:
        """Scenario seconds until the last event."""
        return max((t for t, _ in expand(self)), default=0.0)


def load_scenario(source: Path | str | dict[str, Any]) -> Scenario:
    """Read a scenario from a YAML file, YAML text or a mapping (ValueError when invalid)."""
    if isinstance(source, dict):
        data: Any = source
        where = "scenario"
    else:
        path = Path(source) if not str(source).lstrip().startswith(("{", "streamer")) else None
        text = path.read_text(encoding="utf-8") if path else str(source)
        where = str(path) if path else "scenario"
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            msg = f"{where}: not valid YAML: {exc}"
            raise ValueError(msg) from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = f"{where}: {loc}: {first['msg']}"
        raise ValueError(msg) from None


@dataclass(frozen=True)
class Action:
    """One thing that happens at one moment: an expanded step."""

    kind: str
    user: str | None = None
    text: str = ""
    value: Any = None


def expand(scenario: Scenario) -> list[tuple[float, Action]]:
    """Every step as (time, action), raids and floods unrolled, in time order."""
    out: list[tuple[float, Action]] = []
    raiders = 0
    for step in scenario.timeline:
        kind = step.kind
        spec = getattr(step, kind)
        if kind == "raid":
            texts = [spec.text] if isinstance(spec.text, str) else spec.text
            for i in range(spec.accounts):
                raiders += 1
                name = f"{spec.prefix}_{raiders}"
                out.append((step.at + i * spec.every, Action("raid", name, texts[i % len(texts)])))
        elif kind == "flood":
            texts = [spec.text] if isinstance(spec.text, str) else spec.text
            out.extend(
                (step.at + i * spec.every, Action("comment", spec.user, texts[i % len(texts)]))
                for i in range(spec.count)
            )
        elif kind in ("comment", "question"):
            out.append((step.at, Action(kind, spec.user, spec.text, spec.language)))
        elif kind in ("live", "viewers", "nuke"):
            out.append((step.at, Action(kind, value=spec)))
        else:
            out.append((step.at, Action(kind, spec.user, value=spec)))
    out.sort(key=lambda item: item[0])
    return out


class ScenarioRunner:
    """Plays a scenario on a fake server in (scaled) real time.

    With ``wait_for_client`` set, an event due while the streamer is live but nobody is
    connected waits (up to that many seconds) for a client, shifting the rest of the
    timeline, so a scripted run never loses events to a slow connect.
    """

    def __init__(
        self,
        fake: FakeEuler,
        scenario: Scenario,
        *,
        speed: float = 1.0,
        wait_for_client: float | None = 15.0,
        on_nuke: Callable[[NukeStep], Awaitable[None]] | None = None,
    ) -> None:
        if speed <= 0:
            msg = "speed must be positive"
            raise ValueError(msg)
        self.fake = fake
        self.scenario = scenario
        self.speed = speed
        self.wait_for_client = wait_for_client
        self.on_nuke = on_nuke
        self.delivered = 0
        self.done = anyio.Event()
        self.went_live = anyio.Event()
        spec = scenario.streamer
        try:
            self.streamer = fake.streamer(spec.unique_id)
        except KeyError:
            self.streamer = fake.add_streamer(spec.unique_id, nickname=spec.nickname)
        self.viewers: dict[str, Viewer] = {
            name: Viewer(unique_id=name, user_id=fake.new_user_id(), **asdict(user))
            for name, user in scenario.users.items()
        }
        for viewer in self.viewers.values():  # TikTok knows whom a handle names
            fake.world.names[viewer.user_id] = (viewer.unique_id, viewer.nickname)

    def viewer(self, name: str) -> Viewer:
        """The account of a scenario user (raiders are created on first use)."""
        found = self.viewers.get(name)
        if found is None:
            found = Viewer(unique_id=name, user_id=self.fake.new_user_id(), nickname=name)
            self.viewers[name] = found
            self.fake.world.names[found.user_id] = (name, name)
        return found

    async def run(self) -> None:
        """Play the timeline to its end."""
        start = anyio.current_time()
        shift = 0.0
        for at, action in expand(self.scenario):
            due = start + shift + at / self.speed
            delay = due - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
            if action.kind != "live" and self.streamer.is_live:
                shift += await self._await_client()
            if action.kind == "nuke":
                if self.on_nuke is not None and self.streamer.is_live:
                    await self.on_nuke(action.value)
                continue
            self.perform(action)
        self.done.set()

    async def _await_client(self) -> float:
        if self.wait_for_client is None or self.fake.connections(self.streamer.unique_id):
            return 0.0
        began = anyio.current_time()
        with anyio.move_on_after(self.wait_for_client):
            await self.fake.wait_connected(self.streamer.unique_id, self.wait_for_client)
        return anyio.current_time() - began

    def perform(self, action: Action) -> None:
        """Do one action now."""
        handle = self.streamer.unique_id
        if action.kind == "live":
            if action.value:
                self.fake.go_live(handle)
                self.went_live.set()
            elif self.streamer.is_live:
                self.fake.go_offline(handle)
            return
        if not self.streamer.is_live:
            return  # nobody sees events of a stream that is not on
        if action.kind == "moderator":
            spec: ModeratorStep = action.value
            target = None if spec.target is None else self.viewer(spec.target)
            mute_for = None if spec.for_ is None else spec.for_ / self.speed
            if moderator_acts(
                self.fake,
                handle,
                spec.action,
                operator=self.viewer(spec.user),
                target=target,
                mute_for=mute_for,
            ):
                self.delivered += 1
            return
        if self.fake.emit(handle, [self._message(action)]):
            self.delivered += 1

    def _message(self, action: Action) -> dict[str, Any]:
        room = self.streamer.room_id
        now = self.fake.now_ms()
        if action.kind == "viewers":
            return msgs.viewers(room, int(action.value), now)
        assert action.user is not None
        who = self.viewer(action.user)
        value = action.value
        if action.kind in ("comment", "raid"):
            return msgs.chat(room, who, action.text, now, language=str(value or "en"))
        if action.kind == "question":
            return msgs.question(room, who, action.text, now)
        if action.kind == "emote":
            return msgs.emote(room, who, value.emote_id, now)
        if action.kind == "gift":
            return msgs.gift(room, who, value.name, value.diamonds, value.count, now)
        if action.kind == "join":
            return msgs.join(room, who, now)
        if action.kind == "like":
            return msgs.like(room, who, value.count, now)
        return msgs.social(room, who, action.kind, now)
