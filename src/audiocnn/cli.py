"""The `audiocnn` command: parses arguments, calls the library, prints results.

Every failure the user can fix (bad file, bad option, broken dataset) is an `AudiocnnError`;
`main` prints its message on one line and exits non-zero, never a traceback. Commands that
work on many files report each bad one and carry on with the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from audiocnn import __version__
from audiocnn.errors import AudiocnnError, ConfigError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or EXIT_OK)
    except AudiocnnError as err:
        print(f"audiocnn: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as err:  # e.g. --out in a folder that cannot be written
        where = f"{err.filename}: " if err.filename else ""
        print(f"audiocnn: error: {where}{err.strerror or err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("audiocnn: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiocnn",
        description="Classify sounds by turning them into spectrogram images and fine-tuning ImageNet CNNs.",
    )
    parser.add_argument("--version", action="version", version=f"audiocnn {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_data_commands(commands)
    _add_features_command(commands)
    _add_training_commands(commands)
    from audiocnn.cli_explain import add_explain_commands
    from audiocnn.cli_predict import add_predict_commands

    add_predict_commands(commands)
    add_explain_commands(commands)
    return parser


# ----------------------------------------------------------------------------- data


def _add_data_commands(commands: argparse._SubParsersAction) -> None:
    from audiocnn.datasets import LOADERS

    data = commands.add_parser("data", help="inspect and download datasets", description="Inspect and download datasets.")
    sub = data.add_subparsers(title="data commands", metavar="COMMAND")
    data.set_defaults(handler=lambda _: data.print_help() or EXIT_USAGE)

    info = sub.add_parser(
        "info",
        help="clips per fold and class, and problems (missing, unreadable, duplicate, leaking files)",
        description="Print clips per fold and per class, and report problems: missing or unreadable "
        "files, unknown labels, duplicates, source recordings that span folds. Exits 1 if any problem is found.",
    )
    info.add_argument("name", choices=list(LOADERS), help="dataset kind")
    info.add_argument("--root", required=True, type=Path, help="dataset folder (for csv: the CSV file)")
    info.add_argument("--folds", type=int, help="folds to assign when the dataset has none (gtzan: 10, folder/csv: 5)")
    info.add_argument("--seed", type=int, help="seed for assigned folds (default 0)")
    info.add_argument("--split", choices=["kfold", "filtered"], help="gtzan only: k-fold or the artist-filtered split")
    info.add_argument("--splits-dir", type=Path, help="gtzan only: folder with *_filtered.txt (default ROOT/splits)")
    info.add_argument("--quick", action="store_true", help="skip opening and hashing every audio file")
    info.set_defaults(handler=_data_info)

    download = sub.add_parser(
        "download",
        help="download and extract an official dataset archive",
        description="Download a dataset from its official source into --root (resumable, checksum-verified) "
        "and extract it. Running it again on a complete folder does nothing.",
    )
    download.add_argument("name", help="esc50, urbansound8k, gtzan or gtzan-splits")
    download.add_argument("--root", required=True, type=Path, help="folder to put the dataset in")
    download.add_argument("--url", help="download from this mirror instead of the official address")
    download.add_argument("--checksum", help="expected checksum of the mirror's file, as sha256:HEX or md5:HEX")
    download.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive after extracting")
    download.add_argument("--no-progress", action="store_true", help="no progress bar")
    download.set_defaults(handler=_data_download)


def _data_info(args: argparse.Namespace) -> int:
    from audiocnn.datasets import load_dataset
    from audiocnn.datasets.report import check, format_report

    options = {"n_folds": args.folds, "seed": args.seed, "split": args.split, "splits_dir": args.splits_dir}
    report = check(load_dataset(args.name, args.root, **options), check_audio=not args.quick)
    print(format_report(report))
    return EXIT_OK if report.ok else EXIT_ERROR


def _data_download(args: argparse.Namespace) -> int:
    from audiocnn.datasets.download import fetch_dataset

    path = fetch_dataset(
        args.name, args.root, url=args.url, checksum=args.checksum,
        progress=not args.no_progress, keep_archives=args.keep_archive,
    )
    print(f"{args.name} is ready in {path}")
    return EXIT_OK


# ----------------------------------------------------------------------------- features


def _add_features_command(commands: argparse._SubParsersAction) -> None:
    from audiocnn.features import FRONTENDS

    features = commands.add_parser(
        "features",
        help="draw spectrogram feature images of audio files",
        description="Draw the image a CNN sees for each audio file: one PNG per file and feature kind, "
        "with time (s) and frequency (Hz) axes and a colour bar.",
    )
    features.add_argument("audio", nargs="+", type=Path, help="audio files or folders (searched recursively)")
    features.add_argument("--kind", default="mel", choices=[*FRONTENDS, "all"], help="feature kind (default mel)")
    features.add_argument(
        "--out", type=Path, default=Path("out"),
        help="a .png path (one file, one kind) or a folder for <name>.<kind>.png (default out/)",
    )
    features.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                          help="frontend parameter, e.g. --set n_mels=64 --set sample_rate=22050 (repeatable)")
    features.add_argument("--offset", type=float, default=0.0, help="start at this many seconds")
    features.add_argument("--duration", type=float,
                          help="draw at most this many seconds (default: the whole file, up to 120 s)")
    features.set_defaults(handler=_features)


def _features(args: argparse.Namespace) -> int:
    from audiocnn.features import FRONTENDS, create_frontend
    from audiocnn.plots import feature_figure

    overrides = parse_overrides(args.overrides)
    if args.kind == "all":
        frontends = [create_frontend({"kind": kind, **_accepted(kind, overrides)}) for kind in FRONTENDS]
    else:
        frontends = [create_frontend({"kind": args.kind, **overrides})]
    files = expand_paths(args.audio)
    single_png = args.out.suffix.lower() == ".png"
    if single_png and (len(files) != 1 or len(frontends) != 1):
        raise ConfigError(f"--out {args.out}: a .png path takes one audio file and one kind; give a folder instead")

    failed = 0
    for path in files:
        for frontend in frontends:
            target = args.out if single_png else args.out / f"{path.stem}.{frontend.kind}.png"
            try:
                feature_figure(path, frontend, target, offset=args.offset, duration=args.duration)
            except AudiocnnError as err:
                print(f"audiocnn: error: {err}", file=sys.stderr)
                failed += 1
                break
            print(target)
    if failed:
        print(f"{len(files) - failed} file(s) drawn, {failed} failed", file=sys.stderr)
    return EXIT_ERROR if failed else EXIT_OK


def _accepted(kind: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """With `--kind all`, each kind gets the overrides it has (n_mfcc only to mfcc, ...);
    a key that no kind has is a typo and an error."""
    from audiocnn.features import FRONTENDS

    def names(k: str) -> set[str]:
        return {f.name for f in dataclasses.fields(FRONTENDS[k].params_type)}

    unknown = sorted(set(overrides) - set().union(*(names(k) for k in FRONTENDS)))
    if unknown:
        raise ConfigError(f"--set {', '.join(unknown)}: no feature kind has such a parameter")
    return {k: v for k, v in overrides.items() if k in names(kind)}


# ----------------------------------------------------------------------------- training


def _add_training_commands(commands: argparse._SubParsersAction) -> None:
    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("recipe", type=Path, help="recipe YAML (see recipes/: smoke, cpu, paper)")
        parser.add_argument("--data-root", required=True, type=Path, help="dataset folder (for csv: the CSV file)")
        parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                            help="override a recipe entry, e.g. --set train.epochs=5 (repeatable)")
        parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                            help="where computed spectrograms are kept between runs (default %(default)s)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    cv = commands.add_parser(
        "cv", help="cross-validate a recipe over a dataset's folds",
        description="Train one model per fold and score it on that fold, choosing weights on validation clips "
        "from the training folds only. Writes per fold metrics.json and predictions.csv, and summary.json, "
        "summary.md and confusion.png for the run. Rerunning resumes: finished folds are kept.",
    )
    common(cv)
    cv.add_argument("--out", required=True, type=Path, help="run folder")
    cv.add_argument("--folds", help="only these folds, e.g. 1,2 (default: all)")
    cv.set_defaults(handler=_cv)

    train = commands.add_parser(
        "train", help="train one model and save it as a bundle",
        description="Train one model and save it as a bundle (model.safetensors + config.json) that predict, "
        "explain and serve read. With --test-fold K, fold K is held out and scored; with --all-data every "
        "clip is used (a validation share is still held out for choosing the epoch).",
    )
    common(train)
    train.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    held_out = train.add_mutually_exclusive_group(required=True)
    held_out.add_argument("--test-fold", type=int, help="hold out and score this fold")
    held_out.add_argument("--all-data", action="store_true", help="train on every clip")
    train.set_defaults(handler=_train)

    study = commands.add_parser(
        "study", help="compare recipe variants by cross-validation on the same folds",
        description="Run every variant of a study file (a base recipe plus section.key: value overrides per "
        "variant; see docs/study-esc50.md and studies/) through the same cross-validation, resuming finished "
        "folds, and write OUT/STUDY.md/.csv (mean ± std accuracy, macro-F1, paired per-fold difference to the "
        "first variant with a 95% interval; the same for quieter, noisy and band-limited test clips) and OUT/STUDY.png. Studies sharing an OUT reuse identical variants' runs.",
    )
    study.add_argument("study", type=Path, help="study YAML")
    study.add_argument("--data-root", required=True, type=Path, help="dataset folder")
    study.add_argument("--out", required=True, type=Path, help="study folder (one run folder per variant)")
    study.add_argument("--folds", help="only these folds, e.g. 1,2 (default: the study's, else all)")
    study.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                       help="where computed spectrograms are kept between runs (default %(default)s)")
    study.add_argument("--report-only", action="store_true",
                       help="train nothing: write the report from the folds finished so far")
    study.add_argument("--no-progress", action="store_true", help="no progress bars")
    study.set_defaults(handler=_study)


def _cv(args: argparse.Namespace) -> int:
    from audiocnn.config import load_recipe
    from audiocnn.cv import run_cv

    recipe = load_recipe(args.recipe, args.overrides)
    folds = _fold_list(args.folds) if args.folds else None
    summary = run_cv(recipe, args.data_root, args.out, folds=folds, cache_dir=args.cache_dir,
                     progress=not args.no_progress)
    if not summary:
        return EXIT_OK  # a DDP rank other than 0: rank 0 reports
    print(f"accuracy {100 * summary['mean_accuracy']:.1f}% ± {100 * summary['std_accuracy']:.1f} over "
          f"{len(summary['folds'])} fold(s), macro-F1 {summary['mean_macro_f1']:.3f}; report in {args.out}/summary.md")
    return EXIT_OK


def _train(args: argparse.Namespace) -> int:
    from audiocnn.config import load_recipe
    from audiocnn.cv import train_bundle

    recipe = load_recipe(args.recipe, args.overrides)
    metrics = train_bundle(recipe, args.data_root, args.out, test_fold=args.test_fold, cache_dir=args.cache_dir,
                           progress=not args.no_progress)
    if not metrics:
        return EXIT_OK  # a DDP rank other than 0: rank 0 reports
    score = f", test accuracy {100 * metrics['accuracy']:.1f}%" if "accuracy" in metrics else ""
    print(f"bundle saved to {args.out}{score}")
    return EXIT_OK


def _study(args: argparse.Namespace) -> int:
    from audiocnn.study import load_study, report_path, run_study

    study = load_study(args.study)
    results = run_study(study, args.data_root, args.out, cache_dir=args.cache_dir, progress=not args.no_progress,
                        folds=_fold_list(args.folds) if args.folds else None, train=not args.report_only)
    print(report_path(study, args.out).read_text())
    print(f"table: {report_path(study, args.out)}, {report_path(study, args.out, '.csv')}; "
          f"chart: {report_path(study, args.out, '.png')}")
    return EXIT_OK if results else EXIT_ERROR


def _fold_list(text: str) -> list[int]:
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"--folds {text!r}: expected fold numbers like 1,2") from None


def default_cache_dir() -> Path:
    import os

    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "audiocnn" / "features"


# ----------------------------------------------------------------------------- helpers


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["n_mels=64", "fmax=8000"]` -> `{"n_mels": 64, "fmax": 8000}` (values parsed as YAML)."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            values[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: cannot parse the value") from None
    return values


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given, folders expanded to the audio files inside; a missing path is an error."""
    from audiocnn.audio import audio_files

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = audio_files(path)
            if not found:
                raise ConfigError(f"{path}: folder holds no audio files")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise ConfigError(f"{path}: no such file or folder")
    return files


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
