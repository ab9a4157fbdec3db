"""No command can write one of its files over another, or over a file it reads.

Every option of every command is classified below; a new option fails this test until
it is, so a new output cannot slip past the check.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pytest

from pipeline.cli import build_parser, main

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "driftline.yaml"

OUTPUTS = "outputs"
DIRS = "dirs"
INPUTS = "inputs"
OTHER = "other"

OPTIONS: dict[str, dict[str, set[str]]] = {
    "run": {INPUTS: {"--config"}},
    "check-config": {INPUTS: {"config"}, OTHER: {"--connect"}},
    "alerts": {OTHER: {"alerts_command"}},
    "demo": {OTHER: {"--offline", "--bootstrap-servers", "--format"}},
    "schema": {DIRS: {"--out"}, OTHER: {"--check"}},
    "replay": {INPUTS: {"--config", "--input"}, OUTPUTS: {"--output", "--dead-letters"}},
    "generate": {
        INPUTS: {"--config"},
        OUTPUTS: {"--output", "--truth"},
        OTHER: {
            "--events",
            "--models",
            "--numeric-features",
            "--categorical-features",
            "--text",
            "--seed",
            "--interval-ms",
            "--bad-every",
            "--drift",
            "--topic",
            "--bootstrap-servers",
        },
    },
    "backtest": {
        INPUTS: {"--config", "--input", "--truth", "--state-in"},
        OUTPUTS: {"--report", "--json", "--alerts", "--state-out"},
        DIRS: {"--png-dir"},
        OTHER: {"--from", "--to", "--margin", "--bootstrap-servers", "--progress", "--no-progress"},
    },
}
# Pairs that may name one file on purpose.
ALLOWED = {("backtest", frozenset({"--state-in", "--state-out"}))}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        a.option_strings[-1] if a.option_strings else a.dest
        for a in parser._actions
        if a.dest != "help"
    }


def test_every_option_of_every_command_is_classified() -> None:
    commands = _commands()
    assert commands.keys() == OPTIONS.keys()
    for name, parser in commands.items():
        classified = set().union(*OPTIONS[name].values())
        assert _options(parser) == classified, name


def _base(command: str, tmp: Path) -> dict[str, str]:
    """Minimal arguments of a command that writes files (besides the pair tested)."""
    events = tmp / "events.jsonl"
    events.write_text('{"not": "read"}\n')
    if command == "replay":
        return {"--config": str(CONFIG), "--input": str(events), "--output": str(tmp / "o")}
    if command == "backtest":
        return {"--config": str(CONFIG), "--input": str(events), "--alerts": str(tmp / "a")}
    if command == "generate":
        return {"--events": "5", "--output": str(tmp / "g")}
    raise AssertionError(command)


def _pairs() -> list[tuple[str, str, str]]:
    out = []
    for command, kinds in OPTIONS.items():
        writes = sorted(kinds.get(OUTPUTS, set()) | kinds.get(DIRS, set()))
        reads = sorted(kinds.get(INPUTS, set()))
        for a, b in [*itertools.combinations(writes, 2), *itertools.product(writes, reads)]:
            if (command, frozenset({a, b})) not in ALLOWED:
                out.append((command, a, b))
    return out


@pytest.mark.parametrize(("command", "first", "second"), _pairs())
def test_two_options_on_one_file_fail_before_writing(
    command: str, first: str, second: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = tmp_path / "shared.file"
    precious = b"precious bytes that must survive\n"
    shared.write_bytes(precious)
    args = _base(command, tmp_path)
    args[first] = args[second] = str(shared)
    if second == "--config":  # the command reads it first: a real config must be there
        shared.write_bytes(CONFIG.read_bytes())
        precious = shared.read_bytes()
    argv = [command, *itertools.chain.from_iterable(args.items())]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert shared.read_bytes() == precious
    dirs = OPTIONS[command].get(DIRS, set())
    if first in dirs or second in dirs:  # a file where a directory goes
        assert "is not a directory" in err
    else:
        assert first in err and second in err, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["replay", "--output", "{t}/o.jsonl", "--input", "{t}/o.dead-letters.jsonl"],
         "--dead-letters is also read by --input"),
        (["backtest", "--alerts", "{t}/a.jsonl", "--report", "{t}/a.dead-letters.jsonl",
          "--input", "{t}/events.jsonl"],
         "--alerts dead letters would clobber --report"),
        (["backtest", "--config", str(CONFIG), "--alerts", "{t}/a.jsonl",
          "--json", "{t}/a.1.jsonl", "--input", "{t}/events.jsonl"],
         "--alerts (config 2: a.1.jsonl) would clobber --json"),
    ],
)  # fmt: skip
def test_derived_file_names_count_too(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "events.jsonl").write_text("{}\n")
    (tmp_path / "o.dead-letters.jsonl").write_text("{}\n")
    full = [argv[0], "--config", str(CONFIG), *(a.format(t=tmp_path) for a in argv[1:])]
    assert main(full) == 2
    assert message in capsys.readouterr().err
