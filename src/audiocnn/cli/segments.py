"""`audiocnn segments`: a review queue of earlier results, cut into audio snippets and a table to fill in."""

from __future__ import annotations

import argparse
from pathlib import Path

from audiocnn.cli import common
from audiocnn.errors import ConfigError


def add_commands(commands: common.Commands) -> None:
    """Add `segments` to the command line."""
    segments = commands.add_parser(
        "segments", help="cut a review queue of earlier results into snippets (top, random, stratified, uncertain)",
        description="Read the detections of result tables that `audiocnn predict` wrote (any format that names "
        "its recordings: raven, csv, scores, json, kaleidoscope; files, or folders searched below), pick a review "
        "queue per label, spread across recordings (top: the most confident; random; stratified: one from each slice "
        "of the confidence range; uncertain: those nearest the threshold, or whose window's top two labels are "
        "closest, active learning's pick), and cut each from its recording with --pad seconds either side into "
        "OUT/<label>/. OUT/segments.csv lists them with empty verdict and new_label columns to fill in. Nothing is "
        "classified again. Running it again resumes: written snippets are kept, segments.csv is written last. A table "
        "or recording that cannot be read is reported and the rest go on; the exit code is then 1.",
    )
    segments.add_argument("tables", nargs="+", type=Path, help="result tables, or folders holding them")
    segments.add_argument("--out", type=Path, required=True, help="the folder for the snippets and segments.csv")
    segments.add_argument("--queue", choices=("top", "random", "stratified", "uncertain"), default="top",
                          help="which detections of each label (default top)")
    segments.add_argument("--per-label", type=int, default=10, metavar="N", help="detections per label (default 10)")
    segments.add_argument("--seed", type=int, default=0, help="random and stratified: the same seed, the same queue")
    segments.add_argument("--threshold", type=float, default=0.5,
                          help="uncertain: the confidence where the model's yes turns to no (default 0.5)")
    segments.add_argument("--top-k", type=int, default=1, metavar="K",
                          help="scores tables: labels of each window that count as detections (default 1)")
    segments.add_argument("--min-confidence", type=float, default=0.0, help="leave out detections below (default 0)")
    segments.add_argument("--max-confidence", type=float, default=1.0, help="leave out detections above (default 1)")
    segments.add_argument("--pad", type=float, default=1.0, metavar="S",
                          help="seconds of the recording either side of each detection (default 1)")
    segments.set_defaults(handler=_segments)


def _segments(args: argparse.Namespace) -> int:
    from audiocnn.inference.segments import QueueOptions, cut_segments
    from audiocnn.inference.tables import result_tables

    common.check_ranges(("--per-label", args.per_label, 1, 10_000), ("--top-k", args.top_k, 1, 1000),
                        ("--seed", args.seed, 0, 2**32 - 1), ("--threshold", args.threshold, 0, 1),
                        ("--min-confidence", args.min_confidence, 0, 1), ("--max-confidence", args.max_confidence, 0, 1),
                        ("--pad", args.pad, 0, 60))
    if args.min_confidence > args.max_confidence:
        raise ConfigError(f"--min-confidence {args.min_confidence} is above --max-confidence {args.max_confidence}")
    options = QueueOptions(args.queue, args.per_label, args.seed, args.threshold, args.top_k, args.min_confidence,
                           args.max_confidence, args.pad)
    run = cut_segments(result_tables(args.tables), args.out, options)
    for problem in run.problems:
        common.error(problem)
    print(f"{run.manifest}: {run.queued} of {run.read} detections queued ({args.queue}, {args.per_label} per label), "
          f"{run.written} snippet(s) written now")
    return common.EXIT_ERROR if run.problems else common.EXIT_OK
