"""`audiocnn evaluate`: earlier results scored against annotated recordings."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from audiocnn.cli import common
from audiocnn.errors import ConfigError
from audiocnn.tabletext import spreadsheet_text


def add_commands(commands: common.Commands) -> None:
    """Add `evaluate` to the command line."""
    evaluate = commands.add_parser(
        "evaluate", help="score results against annotated recordings (precision, recall, F1, AP, AUROC, PR curves)",
        description="Score the detections of result tables that `audiocnn predict` wrote (raven, csv, scores, json, "
        "kaleidoscope; files or folders) against annotated recordings (a folder of recordings, each beside its "
        "Raven or Audacity table, as `audiocnn train` reads them): per annotated class and overall, event-based "
        "(an onset within --collar seconds) and segment-based (segments of --segment seconds) precision, recall and F1 "
        "at --threshold, and over all thresholds the segments' average precision, AUROC and precision-recall curves. "
        "Detections of classes nobody annotated are left out. Writes OUT/evaluation.json, OUT/evaluation.csv and "
        "OUT/pr_curves.png. For AP and AUROC use a scores table (every class's probability); other formats list "
        "each window's top labels only.",
    )
    evaluate.add_argument("predictions", nargs="+", type=Path, help="result tables, or folders holding them")
    evaluate.add_argument("--annotations", type=Path, required=True, help="the annotated recordings' folder")
    evaluate.add_argument("--out", type=Path, required=True, help="the folder for the report and the picture")
    evaluate.add_argument("--threshold", type=float, default=0.5, help="a detection's lowest probability (default 0.5)")
    evaluate.add_argument("--collar", type=float, default=None,
                          help="event-based: seconds an onset may be off (default: half the tables' window, the hop "
                          "`predict` uses, since an estimated onset falls on a window's start)")
    evaluate.add_argument("--offsets", action="store_true",
                          help="event-based: offsets must match too (within the collar or half the event's length)")
    evaluate.add_argument("--segment", type=float, default=1.0, help="segment-based: segment length, s (default 1)")
    evaluate.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from audiocnn import atomic
    from audiocnn.inference.evaluation import EvaluationOptions, evaluate
    from audiocnn.inference.tables import result_tables
    from audiocnn.viz.pr_curves import save_pr_curves

    common.check_ranges(("--threshold", args.threshold, 0, 1), ("--segment", args.segment, 0.01, 3600),
                        *([("--collar", args.collar, 0, 60)] if args.collar is not None else []))
    if not args.annotations.is_dir():
        raise ConfigError(f"--annotations {args.annotations}: not a folder")
    options = EvaluationOptions(args.threshold, args.collar, args.segment, args.offsets)
    result = evaluate(result_tables(args.predictions), args.annotations, options)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(args.out / "evaluation.json", json.dumps(result.report(), indent=2) + "\n")
    atomic.write_text(args.out / "evaluation.csv", _csv(result.classes))
    save_pr_curves(result.curves, result.classes, args.out / "pr_curves.png",
                   f"{len(result.classes)} classes, {result.recordings} recording(s), {args.segment:g} s segments")
    for problem in result.problems:  # what was left out: the figures stand, said of what was scored
        print(f"audiocnn: warning: {common.printable(problem)}", file=sys.stderr)
    print(_table(result.classes, result.overall, args.threshold))
    print(f"report: {args.out / 'evaluation.json'}, {args.out / 'evaluation.csv'}, {args.out / 'pr_curves.png'}")
    return common.EXIT_OK


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _table(classes: dict, overall: dict, threshold: float) -> str:
    lines = [f"{'class':<22} {'events':>6} {'event P':>8} {'R':>6} {'F1':>6} {'segm. F1':>9} {'AP':>6} {'AUROC':>6}"
             f"   (threshold {threshold:g})"]
    for label, c in classes.items():
        e = c["event"]
        lines.append(f"{label[:22]:<22} {c['annotated_events']:>6} {_figure(e['precision']):>8} {_figure(e['recall']):>6} "
                     f"{_figure(e['f1']):>6} {_figure(c['segment']['f1']):>9} {_figure(c['average_precision']):>6} "
                     f"{_figure(c['auroc']):>6}")
    e = overall["event"]
    lines.append(f"{'all (micro)':<22} {'':>6} {_figure(e['precision']):>8} {_figure(e['recall']):>6} {_figure(e['f1']):>6} "
                 f"{_figure(overall['segment']['f1']):>9} {_figure(overall['mean_average_precision']):>6} "
                 f"{_figure(overall['mean_auroc']):>6}")
    return "\n".join(lines)


def _csv(classes: dict) -> str:
    out = io.StringIO(newline="")
    table = csv.writer(out)
    table.writerow(["class", "annotated_events", "event_tp", "event_fp", "event_fn", "event_precision", "event_recall",
                    "event_f1", "segment_tp", "segment_fp", "segment_fn", "segment_precision", "segment_recall",
                    "segment_f1", "average_precision", "auroc"])
    for label, c in classes.items():
        e, s = c["event"], c["segment"]
        table.writerow([spreadsheet_text(label), c["annotated_events"],
                        e["tp"], e["fp"], e["fn"], e["precision"], e["recall"], e["f1"], s["tp"], s["fp"], s["fn"],
                        s["precision"], s["recall"], s["f1"], c["average_precision"], c["auroc"]])
    return out.getvalue()
