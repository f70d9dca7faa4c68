"""`audiocnn cv`, `audiocnn train` and `audiocnn study`: cross-validate, train a bundle, compare recipes."""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from audiocnn.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    Commands,
    cache_option,
    data_root_option,
    folds_option,
    incomplete_option,
    progress_option,
)
from audiocnn.errors import AudiocnnWarning


def _recipe_options() -> argparse.ArgumentParser:
    """What `cv` and `train` both take: a recipe and its overrides."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("recipe", type=Path, help="recipe YAML (see recipes/: smoke, cpu, ablation, paper, birdnet)")
    parent.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a recipe entry, e.g. --set train.epochs=5 (repeatable)")
    return parent


def add_commands(commands: Commands) -> None:
    """Add the training commands `cv`, `train` and `study` to the command line."""
    shared = [_recipe_options(), data_root_option(), cache_option(), progress_option(), incomplete_option()]
    cv = commands.add_parser(
        "cv", parents=[*shared, folds_option()], help="cross-validate a recipe over a dataset's folds",
        description="Train one model per fold and score it on that fold, choosing weights on validation clips "
        "from the training folds only. Writes per fold metrics.json, predictions.csv, robustness.json and the "
        "fold's model (a bundle), and summary.json, summary.md and confusion.png for the run. Rerunning resumes: "
        "finished folds are kept.",
    )
    cv.add_argument("--out", required=True, type=Path, help="run folder")
    cv.set_defaults(handler=_cv)

    train = commands.add_parser(
        "train", parents=shared, help="train one model and save it as a bundle",
        description="Train one model and save it as a bundle (model.safetensors + config.json) that predict "
        "and explain read. With --test-fold K, fold K is held out and scored; with --all-data every "
        "clip is used (a validation share is still held out for choosing the epoch).",
    )
    train.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    held_out = train.add_mutually_exclusive_group(required=True)
    held_out.add_argument("--test-fold", type=int, help="hold out and score this fold")
    held_out.add_argument("--all-data", action="store_true", help="train on every clip")
    train.set_defaults(handler=_train)

    study = commands.add_parser(
        "study", parents=[data_root_option("dataset folder"), cache_option(), progress_option(),
                          folds_option("the study's, else all"), incomplete_option()],
        help="compare recipe variants by cross-validation on the same folds",
        description="Run every variant of a study file (a base recipe plus section.key: value overrides per "
        "variant; see docs/study-esc50.md and studies/) through the same cross-validation, resuming finished "
        "folds, and write OUT/STUDY.md/.csv (mean ± std accuracy, macro-F1, paired per-fold difference to the "
        "first variant with a 95% interval; the same for quieter, noisy and band-limited test clips) and "
        "OUT/STUDY.png. Studies sharing an OUT reuse identical variants' runs.",
    )
    study.add_argument("study", type=Path, help="study YAML")
    study.add_argument("--out", required=True, type=Path, help="study folder (one run folder per variant)")
    study.add_argument("--report-only", action="store_true",
                       help="train nothing: write the report from the folds finished so far")
    study.set_defaults(handler=_study)


def warn_unfitted(records: Mapping[str, Mapping[str, Any] | None]) -> None:
    """One warning line if a model's `unknown` threshold was left at its default for want of clips.

    Shown whatever the warning filters say (as a summary line is): it is part of what the command
    reports about the model it made, not a note from deep inside a library.
    """
    from audiocnn.training.calibration import unfitted_warning

    message = unfitted_warning(records)
    if message is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("always", AudiocnnWarning)
            warnings.warn(message, AudiocnnWarning, stacklevel=2)


def _cv(args: argparse.Namespace) -> int:
    from audiocnn.training.reports import run_calibrations, unknown_lines

    summary = _run(args, "run_cv", folds=args.folds)
    if summary:  # empty on a DDP rank other than 0: rank 0 reports
        folds = run_calibrations(args.out)
        for line in unknown_lines(folds):
            print(line)
        warn_unfitted({f"fold {fold}": m.get("calibration") for fold, m in folds.items()})
        print(f"accuracy {100 * summary['mean_accuracy']:.1f}% ± {100 * summary['std_accuracy']:.1f} over "
              f"{len(summary['folds'])} fold(s), macro-F1 {summary['mean_macro_f1']:.3f}; "
              f"report in {args.out}/summary.md")
    return EXIT_OK


def _train(args: argparse.Namespace) -> int:
    from audiocnn.training.calibration import threshold_summary

    metrics = _run(args, "train_bundle", test_fold=args.test_fold)
    if metrics:  # empty on a DDP rank other than 0: rank 0 reports
        score = f", test accuracy {100 * metrics['accuracy']:.1f}%" if "accuracy" in metrics else ""
        print(f"bundle saved to {args.out}{score}")
        print(threshold_summary(metrics.get("calibration"), metrics.get("n_val")))
        warn_unfitted({str(args.out): metrics.get("calibration")})
    return EXIT_OK


def _run(args: argparse.Namespace, function: str, **options: object) -> dict:
    """The recipe (with --set overrides) through `training.cv.<function>` with the shared options."""
    from audiocnn.config import load_recipe
    from audiocnn.training import cv

    recipe = load_recipe(args.recipe, args.overrides)
    return getattr(cv, function)(recipe, args.data_root, args.out, cache_dir=args.cache_dir,
                                 progress=not args.no_progress, allow_incomplete=args.allow_incomplete, **options)


def _study(args: argparse.Namespace) -> int:
    from audiocnn.training.study import load_study, report_path, run_study

    study = load_study(args.study)
    results = run_study(study, args.data_root, args.out, cache_dir=args.cache_dir, progress=not args.no_progress,
                        folds=args.folds, train=not args.report_only, allow_incomplete=args.allow_incomplete)
    print(report_path(study, args.out).read_text())
    print(f"table: {report_path(study, args.out)}, {report_path(study, args.out, '.csv')}; "
          f"chart: {report_path(study, args.out, '.png')}")
    return EXIT_OK if results else EXIT_ERROR
