"""`modbot run` in-process against the fake Euler server: watch, act, audit, stop cleanly."""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from modbot.actions.executor import Work
from modbot.audit.query import AuditFilter
from modbot.audit.store import AuditStore, Patience, default_db
from modbot.config import Settings
from modbot.daemon import ENGINE_SLICE, Daemon
from modbot.errors import ConfigError
from modbot.euler.decode import Decoder
from modbot.euler.oauth import TokenManager
from modbot.euler.watcher import Arrival
from modbot.fake import messages as m
from modbot.fake.clock import FakeClock
from modbot.fake.server import FakeEuler
from modbot.loopback import LoopbackServer
from tests.helpers import until

REPO = Path(__file__).parent.parent


def settings_for(fake: FakeEuler, server: LoopbackServer, state: Path, **extra: object) -> Settings:
    values: dict[str, object] = {
        "api_key": fake.api_key,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "api_base_url": server.url,
        "ws_url": server.ws_url,
        "streamers": ["host_handle"],
        "state_dir": state,
        "rules_dir": REPO / "rules",
        "live_check_interval": 1.0,
    }
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


async def rows(state: Path) -> list[tuple[str, str, str]]:
    async with AuditStore.open(default_db(state)) as store:
        found = await store.query(AuditFilter(limit=None, oldest_first=True))
    return [(r.rule, r.action, r.status) for r in found]


@pytest.fixture
def state(tokens: TokenManager, tmp_path: Path) -> Path:
    del tokens  # the grant is stored in tmp_path/state
    return tmp_path / "state"


async def test_the_daemon_moderates_a_live_stream_and_stops_cleanly(
    fake: FakeEuler, fake_server: LoopbackServer, clock: FakeClock, state: Path
) -> None:
    daemon = Daemon(
        settings_for(fake, fake_server, state), clock=clock, handle_signals=False, grace=5
    )
    before = (sys.getswitchinterval(), gc.get_threshold())
    tuned: list[tuple[float, tuple[int, int, int]]] = []
    room = fake.streamer("host_handle")
    troll = m.Viewer("troll", "6811111111111111111")
    fan = m.Viewer("fan", "6822222222222222222", follower=True)
    mod = m.Viewer("mod", "6833333333333333333", moderator=True)
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            assert await daemon.run() == 0

        tg.start_soon(run)
        await fake.wait_connected("host_handle")
        now = fake.now_ms()
        fake.emit(
            "host_handle",
            [
                m.chat(room.room_id, fan, "hello everyone", now),
                m.chat(room.room_id, mod, "slurword", now),  # moderators are exempt
                m.chat(room.room_id, troll, "you are a s.l.u.r.w.o.r.d", now),
                m.chat(room.room_id, room.owner, "slurword test", now),  # the streamer
            ],
        )
        await until(lambda: troll.user_id in room.bans)
        tuned.append((sys.getswitchinterval(), gc.get_threshold()))
        # The stream ends: back to watching, and connected again when live again.
        fake.go_offline("host_handle")
        await until(lambda: fake.connections("host_handle") == 0)
        fake.go_live("host_handle")
        room = fake.streamer("host_handle")
        await until(lambda: fake.connections("host_handle") == 1)
        fake.emit(
            "host_handle", [m.chat(room.room_id, fan, "free coins at bad.example", fake.now_ms())]
        )
        await until(lambda: fan.user_id in room.mutes)
        daemon.stop()
    assert await rows(state) == [
        ("slurs", "ban", "done"),
        ("scam-phrases", "mute", "done"),
    ]
    assert len(fake.calls_to("ban")) == 1
    assert daemon.stats.events >= 6
    # While it ran, the interpreter was tuned for it (see Daemon.run); afterwards, as it was.
    assert tuned[0][0] < before[0]
    assert tuned[0][1][2] > before[1][2]
    assert (sys.getswitchinterval(), gc.get_threshold()) == before


async def test_a_bad_event_never_stops_the_daemon(
    fake: FakeEuler, fake_server: LoopbackServer, clock: FakeClock, state: Path
) -> None:
    daemon = Daemon(settings_for(fake, fake_server, state), clock=clock, handle_signals=False)
    room = fake.streamer("host_handle")
    troll = m.Viewer("troll", "6811111111111111111")
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        await fake.wait_connected("host_handle")
        fake.emit_raw("host_handle", "{not json")
        fake.emit_raw("host_handle", '{"messages": [{"type": "WebcastChatMessage", "data": 5}]}')
        fake.emit("host_handle", [m.chat(room.room_id, troll, "slurword", fake.now_ms())])
        await until(lambda: troll.user_id in room.bans)
        daemon.stop()


async def fill_the_disk(daemon: Daemon) -> None:
    """The audit database may not grow past its pages: what a full disk does to it."""
    assert daemon.store is not None
    ((pages,),) = await daemon.store.db.execute_fetchall("PRAGMA page_count")
    await daemon.store.db.execute(f"PRAGMA max_page_count = {pages}")


def patient_daemon(
    fake: FakeEuler, server: LoopbackServer, state: Path, clock: FakeClock
) -> Daemon:
    return Daemon(
        settings_for(fake, server, state),
        clock=clock,
        handle_signals=False,
        grace=0.5,
        patience=Patience(first=0.05, longest=0.05),
    )


def slurs(fake: FakeEuler, count: int) -> list[m.Viewer]:
    """Trolls whose audit rows need pages (long texts)."""
    room = fake.streamer("host_handle").room_id
    trolls = [m.Viewer(f"troll{i}", f"68111111111111111{i:02d}") for i in range(count)]
    text = "slurword " + "x" * 1_900
    fake.emit("host_handle", [m.chat(room, t, text, fake.now_ms()) for t in trolls])
    return trolls


async def test_on_a_full_disk_no_call_goes_out_and_a_stop_still_stops(
    fake: FakeEuler, fake_server: LoopbackServer, clock: FakeClock, state: Path, capsys
) -> None:
    """While the audit database cannot grow, the bans wait unwritten and uncalled; a stop
    ends the run (exit 0) and says that those decisions were not recorded."""
    daemon = patient_daemon(fake, fake_server, state, clock)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                assert await daemon.run() == 0

            tg.start_soon(run)
            await fake.wait_connected("host_handle")
            await fill_the_disk(daemon)
            slurs(fake, 10)
            await until(lambda: daemon.store is not None and daemon.store.failing is not None)
            await anyio.sleep(0.2)  # a few tries
            assert fake.calls_to("ban") == []
            daemon.stop()
    assert fake.calls_to("ban") == []
    assert "stopped_with_audit_failing" in capsys.readouterr().out


async def test_dry_run_calls_nothing(
    fake: FakeEuler, fake_server: LoopbackServer, clock: FakeClock, state: Path
) -> None:
    daemon = Daemon(
        settings_for(fake, fake_server, state, dry_run=True), clock=clock, handle_signals=False
    )
    room = fake.streamer("host_handle")
    troll = m.Viewer("troll", "6811111111111111111")
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        await fake.wait_connected("host_handle")
        fake.emit("host_handle", [m.chat(room.room_id, troll, "slurword", fake.now_ms())])
        await until(lambda: daemon.stats.decisions >= 1)
        await anyio.sleep(0.2)
        daemon.stop()
    assert fake.calls_to("ban") == []
    assert await rows(state) == [("slurs", "ban", "observed")]


async def test_a_decision_is_logged_under_the_audit_rows_names(
    fake: FakeEuler, fake_server: LoopbackServer, clock: FakeClock, state: Path
) -> None:
    """The ``decision`` line names each fact as the audit row does (one name per fact):
    the viewer's text is ``msg_text``, the decision's own ``text`` is what modbot says."""
    daemon = Daemon(settings_for(fake, fake_server, state), clock=clock, handle_signals=False)
    room = fake.streamer("host_handle")
    troll = m.Viewer("troll", "6811111111111111111")
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await fake.wait_connected("host_handle")
            fake.emit("host_handle", [m.chat(room.room_id, troll, "slurword", fake.now_ms())])
            await until(lambda: troll.user_id in room.bans)
            daemon.stop()
    [line] = [e for e in logs if e["event"] == "decision"]
    assert line["msg_text"] == "slurword"
    assert (line["streamer"], line["rule"], line["action"], line["mode"]) == (
        "host_handle",
        "slurs",
        "ban",
        "enforce",
    )
    assert (line["user_id"], line["unique_id"], line["described"]) == (
        troll.user_id,
        "troll",
        "ban",
    )
    assert "user" not in line  # the one old name
    assert "suppressed" not in line  # nothing unset is logged


async def test_reload_keeps_the_old_rules_when_the_new_ones_are_broken(
    fake: FakeEuler, fake_server: LoopbackServer, clock: FakeClock, state: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    good = "version: 1\nrules:\n  - id: r\n    on: comment\n    when: {text.words: %s}\n    then: [ban]\n"
    (rules / "r.yaml").write_text(good % "alpha")
    daemon = Daemon(
        settings_for(fake, fake_server, state, rules_dir=rules), clock=clock, handle_signals=False
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        await until(daemon.started.is_set)
        (rules / "r.yaml").write_text(
            "version: 1\nrules: [{id: r, on: comment, when: {text.wrods: x}}]\n"
        )
        assert not await daemon.reload()
        assert daemon.engine.ruleset.rule("r") is not None
        (rules / "r.yaml").write_text(good % "beta")
        assert await daemon.reload()
        assert daemon.stats.reloads == 1
        daemon.stop()


async def test_missing_grant_or_streamers_is_a_clear_error(
    fake: FakeEuler, fake_server: LoopbackServer, clock: FakeClock, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="modbot auth login"):
        await Daemon(settings_for(fake, fake_server, tmp_path / "empty"), clock=clock).run()
    with pytest.raises(ConfigError, match="no streamers"):
        await Daemon(
            settings_for(fake, fake_server, tmp_path / "empty", streamers=[]), clock=clock
        ).run()


async def test_the_engine_decides_in_slices_and_hands_each_slice_on_at_once(
    fake: FakeEuler, fake_server: LoopbackServer, clock: FakeClock, state: Path
) -> None:
    """A big bundle is decided ENGINE_SLICE events between turns of the loop; queued
    bundles are taken without a turn each; a slice's decisions are already with the
    executor when the other tasks get their turn (not one turn later)."""
    daemon = Daemon(settings_for(fake, fake_server, state), clock=clock, handle_signals=False)
    assert await daemon.reload(initial=True)
    decoder = Decoder("host_handle", room_id="7001")

    def arrival(count: int, first: int) -> Arrival:
        comments = [
            m.chat("7001", m.Viewer(f"v{n}", str(6810000000000000000 + n)), "slurword", 1000)
            for n in range(first, first + count)
        ]
        return Arrival(decoder.decode(m.bundle(comments, 1000)), 0.0)

    arrivals_send, arrivals = anyio.create_memory_object_stream[Arrival](10)
    work, work_recv = anyio.create_memory_object_stream[list[Work]](100)
    for bundle in (arrival(20, 0), arrival(1, 20), arrival(1, 21), arrival(1, 22)):
        arrivals_send.send_nowait(bundle)
    arrivals_send.close()
    seen: list[tuple[int, int]] = []  # (events decided, decisions with the executor)
    handed = 0

    async def watch() -> None:
        nonlocal handed
        while not seen or seen[-1][0] < 23:
            await anyio.lowlevel.checkpoint()
            while True:
                try:
                    handed += len(work_recv.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            seen.append((daemon.stats.events, handed))

    async with work_recv, anyio.create_task_group() as tg:
        tg.start_soon(watch)
        tg.start_soon(daemon._engine_loop, arrivals, work)
    progress = sorted({events for events, _ in seen})
    assert progress == [ENGINE_SLICE, 2 * ENGINE_SLICE, 23]
    assert all(decided == handed for decided, handed in seen)  # each event: one ban


# --- hostile rule files on a hot reload (security review M2) ------------------------------

GOOD_RULE = "version: 1\nrules:\n  - id: r\n    on: comment\n    when: {text.words: alpha}\n    then: [ban]\n"
LIST_RULE = (
    "version: 1\nlists:\n  x: {file: %s}\nrules:\n"
    "  - id: r\n    on: comment\n    when: {text.words: '@x'}\n    then: [ban]\n"
)
BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def hostile_rules(tmp_path: Path) -> Path:
    """A rules directory with one good rule (ban on 'alpha'), beside a secret outside it."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(GOOD_RULE)
    (tmp_path / "secret.txt").write_text("alpha\n")
    return rules


@pytest.fixture
def no_file_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the reloads a test asks for (the watcher would add its own after 3 s)."""
    monkeypatch.setattr("modbot.daemon.RULE_POLL", 3600.0)


async def ban_on_alpha(fake: FakeEuler, name: str) -> None:
    """The daemon still decides with the good rule: a viewer who says alpha is banned."""
    await fake.wait_connected("host_handle")
    room = fake.streamer("host_handle")
    viewer = m.Viewer(name, str(6840000000000000000 + len(name)))
    fake.emit("host_handle", [m.chat(room.room_id, viewer, "alpha", fake.now_ms())])
    await until(lambda: viewer.user_id in room.bans)


@pytest.mark.usefixtures("no_file_watch")
async def test_hostile_rule_files_are_rejected_on_reload_and_the_old_rules_stay(
    fake: FakeEuler, fake_server: LoopbackServer, clock: FakeClock, state: Path, tmp_path: Path
) -> None:
    """Each was a crash (alias bomb: MemoryError, 5,000 digits: ValueError, /dev/zero:
    MemoryError) or a reload that never ended (a FIFO) in the running daemon."""
    rules = hostile_rules(tmp_path)
    os.mkfifo(rules / "fifo.txt")
    (rules / "outside.txt").symlink_to(tmp_path / "secret.txt")
    hostile = {
        "alias bomb": BOMB,
        "5000 digits": GOOD_RULE + "    priority: " + "9" * 5000 + "\n",
        "/dev/zero": LIST_RULE % "/dev/zero",
        "a FIFO": LIST_RULE % "fifo.txt",
        "../secret.txt": LIST_RULE % "../secret.txt",
        "a link to outside": LIST_RULE % "outside.txt",
    }
    daemon = Daemon(
        settings_for(fake, fake_server, state, rules_dir=rules),
        clock=clock,
        handle_signals=False,
        reload_limit=5.0,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        await until(daemon.started.is_set)
        old = daemon.engine.ruleset
        for count, (name, text) in enumerate(hostile.items(), start=1):
            (rules / "r.yaml").write_text(text)
            with anyio.fail_after(1):  # none waits for the reload's time limit
                assert not await daemon.reload(), name
            assert daemon.engine.ruleset is old, name
            assert daemon.stats.failed_reloads == count
        await ban_on_alpha(fake, "after")
        (rules / "r.yaml").write_text(GOOD_RULE.replace("alpha", "beta"))
        assert await daemon.reload()
        assert daemon.stats.reloads == 1
        stopped = anyio.current_time()
        daemon.stop()
    assert anyio.current_time() - stopped < 2


def hanging_loader(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], threading.Event]:
    """load_ruleset replaced by one that never ends (until the event is set): a list
    file on a disk that stopped answering."""
    calls: list[int] = []
    release = threading.Event()

    def hang(*args: object, **kwargs: object) -> None:
        calls.append(1)
        release.wait(30)

    monkeypatch.setattr("modbot.daemon.load_ruleset", hang)
    return calls, release


@pytest.mark.usefixtures("no_file_watch")
async def test_a_reload_that_hangs_is_abandoned_and_signals_are_still_handled(
    fake: FakeEuler,
    fake_server: LoopbackServer,
    clock: FakeClock,
    state: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGHUP starts a reload that hangs: it is abandoned after reload_limit and counted
    failed; more SIGHUPs meanwhile are one more reload (refused while the stuck load's
    thread runs); the old rules keep deciding; SIGTERM ends the daemon at once."""
    before = signal.getsignal(signal.SIGHUP)
    daemon = Daemon(
        settings_for(fake, fake_server, state, rules_dir=hostile_rules(tmp_path)),
        clock=clock,
        handle_signals=True,
        reload_limit=0.3,
    )
    old: object = None
    release = threading.Event()
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:

                async def run() -> None:
                    assert await daemon.run() == 0

                tg.start_soon(run)
                await until(daemon.started.is_set)
                await until(lambda: signal.getsignal(signal.SIGHUP) != before)  # handled
                old = daemon.engine.ruleset
                calls, release = hanging_loader(monkeypatch)
                os.kill(os.getpid(), signal.SIGHUP)
                await until(lambda: calls == [1])
                os.kill(os.getpid(), signal.SIGHUP)
                os.kill(os.getpid(), signal.SIGHUP)
                await until(lambda: daemon.stats.failed_reloads == 2, timeout=3)
                assert calls == [1]  # no second thread while the first is stuck
                assert daemon.engine.ruleset is old
                await ban_on_alpha(fake, "during")
                assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL  # ours, not pytest's end
                stopped = anyio.current_time()
                os.kill(os.getpid(), signal.SIGTERM)
            assert anyio.current_time() - stopped < 2
    finally:
        release.set()
    assert daemon.stats.failed_reloads == 2
    assert daemon.stats.reloads == 0


async def test_a_load_that_hangs_at_start_up_is_a_clear_error(
    fake: FakeEuler,
    fake_server: LoopbackServer,
    clock: FakeClock,
    state: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _calls, release = hanging_loader(monkeypatch)
    daemon = Daemon(
        settings_for(fake, fake_server, state, rules_dir=hostile_rules(tmp_path)),
        clock=clock,
        handle_signals=False,
        reload_limit=0.3,
    )
    try:
        with anyio.fail_after(5):
            assert await daemon.run() == 1
    finally:
        release.set()
    out = capsys.readouterr().out
    assert "loading the rules took more than 0.3 s and was abandoned" in out
    assert "nothing is loaded" in out


@pytest.mark.usefixtures("no_file_watch")
async def test_an_unexpected_exception_of_the_loader_keeps_the_old_rules(
    fake: FakeEuler,
    fake_server: LoopbackServer,
    clock: FakeClock,
    state: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    daemon = Daemon(
        settings_for(fake, fake_server, state, rules_dir=hostile_rules(tmp_path)),
        clock=clock,
        handle_signals=False,
    )

    def broken(*args: object, **kwargs: object) -> None:
        msg = "a bug\nin two lines"
        raise RuntimeError(msg)

    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        await until(daemon.started.is_set)
        old = daemon.engine.ruleset
        with monkeypatch.context() as patch:
            patch.setattr("modbot.rules.compile._Compiler.compile", broken)
            assert not await daemon.reload()  # inside load_ruleset: a diagnostic
        with monkeypatch.context() as patch:
            patch.setattr("modbot.daemon.load_ruleset", broken)
            assert not await daemon.reload()  # load_ruleset itself raises
        assert daemon.engine.ruleset is old
        assert daemon.stats.failed_reloads == 2
        await ban_on_alpha(fake, "still")
        daemon.stop()
    out = capsys.readouterr().out
    assert "the rules could not be compiled: RuntimeError: a bug in two lines" in out
    assert "loading the rules failed: RuntimeError: a bug in two lines" in out
    assert "Traceback" not in out


async def test_a_changed_rule_file_is_reloaded_by_the_watcher(
    fake: FakeEuler,
    fake_server: LoopbackServer,
    clock: FakeClock,
    state: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The watcher asks the reloader for the reload (it no longer waits for it)."""
    monkeypatch.setattr("modbot.daemon.RULE_POLL", 0.05)
    rules = hostile_rules(tmp_path)
    daemon = Daemon(
        settings_for(fake, fake_server, state, rules_dir=rules), clock=clock, handle_signals=False
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        await until(daemon.started.is_set)
        (rules / "r.yaml").write_text(GOOD_RULE.replace("id: r", "id: renamed"))
        os.utime(rules / "r.yaml", (1, 1))  # a change even on a coarse clock
        await until(lambda: daemon.engine.ruleset.rule("renamed") is not None)
        assert daemon.stats.reloads == 1
        daemon.stop()
