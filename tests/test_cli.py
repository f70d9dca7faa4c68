"""The command as a user meets it: help on every command, a real process, clear failures."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from audiocnn.cli import build_parser


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the real parser, the top level included: ("",), ("data",), ("data", "info"), ..."""
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*path, name))
    return found


def _parser_of(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser


COMMANDS = _commands(build_parser())
LEAVES = ["cv", "train", "study", "predict", "quantize", "explain", "explain-dataset", "features", "info", "download"]


def test_the_walk_finds_every_command():
    assert {path[-1] for path in COMMANDS if path} >= set(LEAVES) | {"data"}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_every_command_has_help_that_names_only_real_commands_and_options(capsys, command):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert done.value.code == 0 and text.startswith("usage: audiocnn")
    parser = _parser_of(command)
    assert parser.description and len(parser.description) > 40, "a description that explains the command"
    # every `audiocnn WORD ...` the help refers to is a command that exists
    top_level = {path[0] for path in COMMANDS if path}
    for word in re.findall(r"`audiocnn ([a-z-]+)", text):
        assert word in top_level, f"help of {' '.join(command) or 'audiocnn'} mentions `audiocnn {word}`"
    # every --option the help mentions is this command's own, or one of the commands it names
    named = [_parser_of(tuple(w.split())) for w in re.findall(r"`audiocnn ([a-z-]+(?: [a-z]+)?)", text)
             if tuple(w.split()) in COMMANDS]
    known = {o for p in [parser, *named] for a in p._actions for o in a.option_strings}
    mentioned = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))
    assert mentioned <= known, f"{' '.join(command)} help mentions {sorted(mentioned - known)}"


def test_no_command_prints_help_and_exits_2(cli):
    result = cli()
    assert result.code == 2 and "usage: audiocnn" in result.out and "features" in result.out


@pytest.mark.slow
def test_real_process_bad_file_exits_1_with_one_line(tmp_path):
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"fLaC but not really")
    done = subprocess.run(
        [sys.executable, "-m", "audiocnn", "features", str(bad), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("audiocnn: error:")]
    assert len(errors) == 1 and "broken.flac" in errors[0]


def test_bad_options_are_clear_errors(cli, tmp_path, esc50_clip):
    result = cli("features", esc50_clip, "--set", "n_mels")
    assert result.code == 1 and "--set 'n_mels': expected KEY=VALUE" in result.err
    result = cli("features", esc50_clip, "--set", "fmax=99999", "--out", tmp_path)
    assert result.code == 1 and "fmax: must not exceed Nyquist" in result.err
    result = cli("features", tmp_path / "nothing-here.wav")
    assert result.code == 1 and "no such file or folder" in result.err
    result = cli("features", esc50_clip, esc50_clip, "--out", tmp_path / "one.png")
    assert result.code == 1 and "a .png path takes one audio file and one kind" in result.err


def test_a_misspelled_feature_parameter_is_refused(cli, tmp_path, esc50_clip):
    result = cli("features", esc50_clip, "--kind", "mel", "--set", "n_mel=64", "--out", tmp_path)
    assert result.code == 1 and "unknown parameter(s) n_mel" in result.err
    result = cli("features", esc50_clip, "--kind", "all", "--set", "n_mfcc=20", "--set", "hopms=5", "--out", tmp_path)
    assert result.code == 1 and "--set hopms: no feature kind has such a parameter" in result.err
    assert not list(tmp_path.glob("*.png"))


def test_unwritable_output_is_one_error_line(cli, tmp_path, esc50_clip):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a folder should be")
    result = cli("features", esc50_clip, "--out", blocker / "pictures")
    assert result.code == 1 and "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.startswith("audiocnn: error:")]
    assert len(lines) == 1 and "file.txt" in lines[0]
