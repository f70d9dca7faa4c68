"""What every command shares: exit codes, the options several commands take, path helpers.

Each option that more than one command takes is declared here once, as a parent parser
(`argparse`'s `parents=`), so its name, type, default and help read the same everywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TextIO, TypeVar, Union, get_args, get_origin

from audiocnn import atomic
from audiocnn.config import parse_settings
from audiocnn.errors import AudiocnnError, ConfigError, OptionError, item_failure
from audiocnn.tabletext import printable

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
Options = TypeVar("Options")

Commands = argparse._SubParsersAction  # what `add_subparsers` returns


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def check_ranges(*checks: tuple[str, float, float, float]) -> None:
    """(option, value, lowest, highest): a `ConfigError` naming the first option outside its range (NaN is)."""
    for name, value, low, high in checks:
        if not low <= value <= high:
            raise ConfigError(f"{name} must be {low:g}-{high:g} (got {value})")


def flag(field: str) -> str:
    """The command line's name of an option field: `top_k` is `--top-k`."""
    return "--" + field.replace("_", "-")


def add_model_options(parser: argparse.ArgumentParser, model: Any, metavars: dict[str, str]) -> None:
    """A flag per field of the pydantic `model` (`inference.options`): its description as the help,
    its default, a `Literal`'s values as the choices; a bool is a switch. The model checks the values
    (`model_from`), so each option is declared and checked in one place for the CLI and the API."""
    for name, field in model.model_fields.items():
        kind = field.annotation
        if get_origin(kind) in (Union, types.UnionType):  # `float | None`: the flag takes a float
            kind = next(arg for arg in get_args(kind) if arg is not type(None))
        shown = "" if field.default is None or field.default is False else f" (default {field.default:g})" \
            if isinstance(field.default, float) else f" (default {field.default})"
        if kind is bool:
            parser.add_argument(flag(name), action="store_true", help=f"{field.description}")
        elif get_origin(kind) is Literal:
            parser.add_argument(flag(name), choices=get_args(kind), default=field.default,
                                help=f"{field.description}{shown}")
        else:
            parser.add_argument(flag(name), type=kind, default=field.default, metavar=metavars.get(name),
                                help=f"{field.description}{shown}")


def model_from(args: argparse.Namespace, model: type[Options]) -> Options:
    """The options `model` (a pydantic model, see `add_model_options`) from the parsed flags, checked:
    a problem is an `OptionError`, which `report` shows with the flag's name."""
    return model(**{name: getattr(args, name) for name in model.model_fields})  # type: ignore[attr-defined]


def progress_option() -> argparse.ArgumentParser:
    """Parent parser with --no-progress, for commands that show progress bars."""
    parent = _parent()
    parent.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parent


def cache_option() -> argparse.ArgumentParser:
    """Parent parser with --cache-dir: where spectrograms are kept between training runs."""
    from audiocnn.datasets.images import default_cache_dir

    parent = _parent()
    parent.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                        help="where computed spectrograms are kept between runs (default %(default)s)")
    return parent


def data_root_option(what: str = "dataset folder (for csv: the CSV file)") -> argparse.ArgumentParser:
    """Parent parser with the required --data-root; `what` is its help text."""
    parent = _parent()
    parent.add_argument("--data-root", required=True, type=Path, help=what)
    return parent


def model_option(*, required: bool = False, what: str = "model bundle folder") -> argparse.ArgumentParser:
    """Parent parser with --model (a bundle folder; optional means the bundled model)."""
    from audiocnn.bundled import bundled_models, model_path

    parent = _parent()
    default = "" if required else " (default: the bundled ESC-50 model, non-commercial use only)"
    parent.add_argument("--model", type=model_path, required=required,
                        help=f"{what}, or the name of a bundled model ({', '.join(bundled_models())}){default}")
    return parent


def incomplete_option() -> argparse.ArgumentParser:
    """Parent parser with --allow-incomplete: train on the usable clips of a dataset with problems."""
    parent = _parent()
    parent.add_argument("--allow-incomplete", action="store_true",
                        help="train even if the dataset has problems (missing files, empty or unknown labels): on the "
                        "usable clips, with a warning; results are then not comparable with the full dataset's")
    return parent


def folds_option(default: str = "all") -> argparse.ArgumentParser:
    """Parent parser with --folds (a comma list, `fold_list`); `default` is said in its help."""
    parent = _parent()
    parent.add_argument("--folds", type=fold_list, help=f"only these folds, e.g. 1,2 (default: {default})")
    return parent


def fold_list(text: str) -> list[int]:
    """argparse type of --folds: `1,3` as sorted fold numbers, each at least 1; else a usage error."""
    try:
        folds = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected fold numbers like 1,2") from None
    if not folds:
        raise argparse.ArgumentTypeError(f"{text!r}: expected fold numbers like 1,2")
    return folds


def error(text: object) -> None:
    """One line on stderr: `audiocnn: error: TEXT` (a file name may hold terminal escapes: shown escaped)."""
    print(f"audiocnn: error: {printable(text)}", file=sys.stderr)


def report(err: AudiocnnError | OSError) -> None:
    """One line on stderr: `audiocnn: error: FILE: problem`."""
    if isinstance(err, OSError):
        error(f"{err.filename}: {err.strerror or err}" if err.filename else err.strerror or err)
    elif isinstance(err, OptionError):
        error(err.named(flag))
    else:
        error(err)


def report_failure(item: object, err: BaseException) -> None:
    """One item of many failed: its line on stderr (`errors.item_failure`: the message, or `internal
    error` with the traceback logged), and the caller goes on with the rest."""
    error(item_failure(item, err))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["n_mels=64", "fmax=8000"]` -> `{"n_mels": 64, "fmax": 8000}` (values parsed as YAML)."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        values[key.strip()] = parse_settings(raw, f"--set {item!r}") if raw.strip() else None
    return values


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given, folders expanded to the audio files inside; a missing path is an error."""
    from audiocnn.inference.inputs import collect

    return [item.path for item in collect(paths)]


def check_output(path: Path, inputs: list[Path], option: str = "--out") -> None:
    """An output path must not be a folder, nor (by inode: links and other spellings too) an input."""
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name")
    if path.exists():
        for source in inputs:
            if os.path.samefile(path, source):
                raise ConfigError(f"{option} {path}: is one of the input recordings; writing there would destroy it")


@contextlib.contextmanager
def output_file(path: Path | None, inputs: list[Path], option: str = "--out") -> Iterator[TextIO]:
    """Standard output, or `path` written atomically: a temporary file beside it is renamed into
    place once complete (and removed if not), so a reader never sees half a file and two runs
    writing the same path never mix. A path that is one of the `inputs` is refused up front."""
    if path is None:
        yield sys.stdout
        return
    check_output(path, inputs, option)
    with atomic.replaced(path) as partial, partial.open("w", newline="") as handle:
        yield handle


def load_model(path: Path | None, *, backbone: bool = True):  # noqa: ANN201 - a Bundle; imported lazily
    """The bundle at `path`, or the bundled model when none is given."""
    from audiocnn import bundle
    from audiocnn.bundled import default_model

    return bundle.load(path or default_model(), backbone=backbone)
