"""Every command walked through its expected failures: no traceback, exit 1 or 2, no ./var.

The commands and their options come from the argparse parser itself, so a command or an
option added later is walked too. Each case runs in-process through ``main([...])``: an
exception that escaped would fail the test with its own traceback.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from modbot.cli import build_parser, main, port_number, positive_count, positive_seconds

pytestmark = pytest.mark.usefixtures("isolated")

GLOBAL = {"state_dir", "config", "env_file", "log_format", "verbose", "quiet", "help"}

# A command that succeeds without credentials and runs for long (the demo) is walked with
# something that makes it stop at once; `dest` is the option that poison uses.
POISON: dict[tuple[str, ...], list[tuple[str, list[str]]]] = {
    ("demo",): [("rule_dir", ["--rules", "missing-rules"]), ("duration", ["--duration", "0"])],
    ("auth", "login"): [("timeout", ["--timeout", "0.01"])],  # nobody will approve
    ("nuke",): [("wait", ["--wait", "0.05"])],  # no daemon takes it (the default waits 10 s)
}


def leaves(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command: (words, its parser)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for action in subs:
        for name, sub in action.choices.items():
            yield from leaves(sub, (*prefix, name))


def all_actions(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.Action]]:
    """Every option and positional of every parser in the tree, with its command."""
    for words, leaf in leaves(parser):
        for action in leaf._actions:
            yield " ".join(words), action


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Things a file option may be given that are not what it wants."""
    rules = tmp_path / "rules"  # the default rules directory: valid, so commands get further
    rules.mkdir()
    (rules / "r.yaml").write_text(
        "version: 1\nrules:\n  - id: r\n    on: comment\n    when: {text.words: spam}\n"
        "    then: [log]\n"
    )
    bad = tmp_path / "garbage.bin"
    bad.write_bytes(b"\xff\xfe\x00garbage\n{not json\n\x1b[2J")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    toml = tmp_path / "bad.toml"
    toml.write_text("api_key = [unclosed\n")
    return {
        "missing": tmp_path / "no" / "such" / "file",
        "garbage": bad,
        "empty": empty,
        "folder": folder,
        "toml": toml,
    }


def bad_values(action: argparse.Action, files: dict[str, Path]) -> list[str]:
    """Values this option should refuse, or fail on, with one sentence."""
    if action.choices is not None:
        return ["bogus"]
    paths = [str(p) for p in files.values()]
    kind = action.type
    if kind is Path:
        return paths
    if kind in (int, port_number, positive_count):
        return ["x", "-1", "0", "99999", "9" * 30]
    if kind in (float, positive_seconds):
        return ["x", "0", "-1", "nan", "inf", "1e400"]
    return ["", "@", "x" * 5000, "\x1b[2J\u202e", "{not json", "10 parsecs", *paths[:2]]


def placeholder(action: argparse.Action, files: dict[str, Path]) -> str:
    """A value for a required argument while another one is being walked."""
    if action.choices is not None:
        return str(next(iter(action.choices)))
    if action.type is Path:
        return str(files["missing"])
    if action.type in (int, float, port_number, positive_count, positive_seconds):
        return "1"
    return "someone"


def cases(files: dict[str, Path]) -> Iterator[tuple[tuple[str, ...], list[str]]]:
    for words, leaf in leaves(build_parser()):
        mine = [a for a in leaf._actions if a.dest not in GLOBAL]
        required = [a for a in mine if a.required or (not a.option_strings and a.nargs is None)]

        def base(varied: str, words: tuple[str, ...] = words) -> list[str]:
            argv = list(words)
            for dest, poison in POISON.get(words, []):
                if dest != varied:
                    argv += poison
                    break
            return argv

        def with_required(
            argv: list[str], varied: str, required: list[argparse.Action] = required
        ) -> list[str]:
            for action in required:
                if action.dest == varied:
                    continue
                value = placeholder(action, files)
                argv += [action.option_strings[0], value] if action.option_strings else [value]
            return argv

        yield words, base("")  # nothing at all: a missing argument, or the defaults
        yield words, with_required(base(""), "")  # no credentials, no state yet
        for option, value in (
            ("--state-dir", str(files["missing"])),
            ("--state-dir", str(files["garbage"])),
            ("--config", str(files["missing"])),
            ("--config", str(files["toml"])),
            ("--config", str(files["folder"])),
            ("--env-file", str(files["missing"])),
            ("--env-file", str(files["garbage"])),
            ("--log-format", "bogus"),
        ):
            yield words, [*with_required(base(""), ""), option, value]
        for action in mine:
            if action.nargs == 0 or isinstance(action, argparse._HelpAction):
                continue
            for value in bad_values(action, files):
                argv = with_required(base(action.dest), action.dest)
                if action.option_strings:
                    argv += [action.option_strings[-1], value]
                else:
                    argv += [value]
                yield words, argv


@pytest.mark.parametrize("credentials", [False, True], ids=["no-credentials", "no-grant"])
def test_every_command_answers_expected_failures_in_one_sentence(
    files, tmp_path, capsys, monkeypatch, credentials
):
    """Missing, unreadable and garbage files, bad values, no credentials (or credentials
    but no grant, and an API that does not answer), a state dir that does not exist or is
    a file: exit 1 or 2 (0 where nothing was wrong), no traceback, something said, and no
    ./var left behind."""
    if credentials:
        with socket.socket() as closed:  # a loopback port where nothing listens
            closed.bind(("127.0.0.1", 0))
            nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
        monkeypatch.setenv("MODBOT_API_BASE_URL", nowhere)
        monkeypatch.setenv("MODBOT_AUTHORIZE_URL", f"{nowhere}/tiktok/oauth/authorize")
        monkeypatch.setenv("MODBOT_WS_URL", nowhere.replace("http", "ws"))
        monkeypatch.setenv("MODBOT_API_KEY", "walk-api-key-0001")
        monkeypatch.setenv("MODBOT_CLIENT_ID", "walk-client")
        monkeypatch.setenv("MODBOT_CLIENT_SECRET", "walk-client-secret-0002")
    walked: set[tuple[str, ...]] = set()
    count = 0
    for words, argv in cases(files):
        count += 1
        walked.add(words)
        code = main(argv)
        out, err = capsys.readouterr()
        assert code in (0, 1, 2), (argv, code, err)
        assert "Traceback" not in err, (argv, err)
        if code:
            assert (out + err).strip(), argv
        assert not (tmp_path / "var").exists(), (argv, "left ./var behind")
    assert count > 100
    assert {("auth", "login"), ("record",), ("undo",), ("replay",), ("run",)} <= walked


def test_a_taken_port_is_one_sentence(euler_env, tmp_path, capsys):
    """`auth login --port P` when another program listens on P: exit 1, one line, no
    traceback (the README recommends a fixed port)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["auth", "login", "--state-dir", str(tmp_path / "s"), "--scopes", "webcast:mute"]
        assert main([*argv, "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "another program listens on that port" in err


def test_no_answer_from_the_authorize_page_is_one_sentence(euler_env, tmp_path, capsys):
    """Nobody approves within --timeout: exit 1 and the one sentence, not an ExceptionGroup."""
    argv = ["auth", "login", "--state-dir", str(tmp_path / "s"), "--scopes", "webcast:mute"]
    assert main([*argv, "--timeout", "0.05"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "ExceptionGroup" not in err
    assert err.strip().splitlines() == [
        "modbot: error: no answer from Euler's authorize page within 0.05 s"
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["auth", "login", "--port", "99999"],
        ["auth", "login", "--port", "-1"],
        ["auth", "login", "--timeout", "0"],
        ["auth", "login", "--timeout", "nan"],
        ["record", "x", "-o", "f.jsonl", "--duration", "0"],
        ["audit", "--limit", "0"],
    ],
)
def test_out_of_range_values_are_usage_errors(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("modbot ")  # argparse's "prog: error:"


def test_every_option_has_help_text():
    """`modbot X --help` explains every option and positional (argparse's own --help and
    --version included)."""
    silent = [
        f"{command}: {action.option_strings or action.dest}"
        for command, action in all_actions(build_parser())
        if not isinstance(action, argparse._SubParsersAction)
        and (not action.help or action.help == argparse.SUPPRESS)
    ]
    assert silent == []


# Commands that print no results of their own: the daemon logs; `auth login` and `demo`
# talk to the person in front of them; `auth logout` only confirms.
NO_RESULTS = {("run",), ("demo",), ("auth", "login"), ("auth", "logout")}


def test_every_command_that_prints_results_takes_json():
    missing = [
        " ".join(words)
        for words, leaf in leaves(build_parser())
        if words not in NO_RESULTS and not any("--json" in a.option_strings for a in leaf._actions)
    ]
    assert missing == []
