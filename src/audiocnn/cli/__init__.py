"""The `audiocnn` command: parses arguments, calls the library, prints results.

One module per command group (`data`, `features`, `training`, `predict`, `explain`, `serve`), their
shared options in `common`. Every failure the user can fix (bad file, bad option, broken
dataset) is an `AudiocnnError`; `main` prints its message on one line and exits non-zero,
never a traceback. Commands that work on many files report each bad one and carry on with
the rest. Nothing in the library imports this package.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from audiocnn import __version__
from audiocnn.cli import (
    common,
    data,
    embed,
    ensemble,
    evaluate,
    explain,
    export,
    features,
    predict,
    search,
    segments,
    serve,
    training,
)
from audiocnn.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, expand_paths, parse_overrides, printable, report
from audiocnn.datasets.images import default_cache_dir
from audiocnn.errors import AudiocnnError, AudiocnnWarning

#: Command groups in the order `audiocnn --help` lists them.
GROUPS = (data, features, training, predict, segments, evaluate, embed, search, explain, serve, export, ensemble)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command `argv` names (default: sys.argv[1:]); the exit status, errors as one line, not a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    try:
        with warnings.catch_warnings():  # restored on return: the command's own way of showing warnings
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            return int(args.handler(args) or EXIT_OK)
    except (AudiocnnError, OSError) as err:  # OSError: e.g. --out in a folder that cannot be written
        report(err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("audiocnn: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - a bug or a library's surprise: one line, its traceback logged
        common.report_failure(f"audiocnn {_command_name(args)}", err)
        return EXIT_ERROR


def _command_name(args: argparse.Namespace) -> str:
    """The command that ran (`predict`, `explain-dataset`), to name what failed."""
    return getattr(args.handler, "__name__", "command").strip("_").replace("_", "-")


def _one_line_warnings(show):  # noqa: ANN001, ANN202 - warnings.showwarning's signature
    """Our own warnings (a problem the user chose to accept) as `audiocnn: warning: ...` lines."""

    def showwarning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if issubclass(category, AudiocnnWarning):
            print(f"audiocnn: warning: {printable(message)}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def build_parser() -> argparse.ArgumentParser:
    """The `audiocnn` parser with every command group's sub-commands (their handlers set as `handler`)."""
    parser = argparse.ArgumentParser(
        prog="audiocnn",
        description="Classify sounds by turning them into spectrogram images and fine-tuning ImageNet CNNs.",
    )
    parser.add_argument("--version", action="version", version=f"audiocnn {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(commands)
    return parser


__all__ = [
    "EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "default_cache_dir", "expand_paths", "main", "parse_overrides",
]
