"""A human moderator acting in the fake world, as TikTok shows it on the WebSocket.

``moderator_acts(fake, "host", "mute", operator=mod, target=viewer)`` changes the
streamer's moderation state as the TikTok app would (the viewer muted, banned, let back
in, comments off or on) and sends the member message that Euler's WebSocket carries for
it (``modbot.fake.messages.member_action``) to every socket of the streamer. Tests and
scenarios use it to make a moderator act between modbot's own actions.

``echo_own_calls(fake)`` makes the fake do what TikTok does with modbot's own calls: a
mute, unmute, ban, unban or comments toggle answered 200 comes back on the WebSocket as
a member message whose operator is the streamer's account (the grant's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modbot.fake import messages as msgs

if TYPE_CHECKING:
    from modbot.fake.server import FakeEuler


def moderator_acts(
    fake: FakeEuler,
    streamer: str,
    action: str,
    *,
    operator: msgs.Viewer,
    target: msgs.Viewer | None = None,
    mute_for: float | None = None,
) -> int:
    """``operator`` does ``action`` (a name of ``messages.MEMBER_ACTIONS``) to ``target``
    in the streamer's current room; how many sockets got the message.

    A mute lasts ``mute_for`` seconds (None: until lifted).
    """
    world = fake.world
    room = world.streamer(streamer)
    now = world.now()
    user = target.user_id if target is not None else ""
    if action == "mute" and user:
        room.mutes[user] = None if mute_for is None else now + mute_for
    elif action == "unmute" and user:
        room.mutes.pop(user, None)
    elif action in ("kick", "ban", "user_kick") and user:
        room.bans.add(user)
    elif action == "unban" and user:
        room.bans.discard(user)
    elif action == "comments_on":
        room.comments_enabled = True
    elif action == "comments_off":
        room.comments_enabled = False
    message = msgs.member_action(room.room_id, operator, action, world.now_ms(), target=target)
    return fake.emit(streamer, [message])


_ECHOED = {"mute": "mute", "unmute": "unmute", "ban": "ban", "unban": "unban"}


def echo_own_calls(fake: FakeEuler) -> None:
    """From now on, modbot's own moderation calls come back as member messages."""
    world = fake.world

    def echo(route: str, room_id: str, params: dict[str, str]) -> None:
        room = world.by_room(room_id)
        if room is None:
            return
        if route == "toggle_comments":
            on = params.get("enabled", "").lower() in ("true", "1")
            action = "comments_on" if on else "comments_off"
            target = None
        elif route in _ECHOED:
            action = _ECHOED[route]
            user = params.get("user_id") or params.get("tiktok_user_id") or ""
            names = world.names.get(user)
            target = msgs.Viewer(names[0] if names else "", user)
        else:
            return
        message = msgs.member_action(
            room.room_id, room.owner, action, world.now_ms(), target=target
        )
        fake.emit(room.unique_id, [message])

    fake.api.answered_hooks.append(echo)
