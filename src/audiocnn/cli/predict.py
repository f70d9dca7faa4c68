"""`audiocnn predict` and `audiocnn quantize`: classify recordings, and make a bundle's fast 8-bit copy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from audiocnn.cli import common
from audiocnn.errors import ConfigError


def add_commands(commands: common.Commands) -> None:
    """Add `predict`, `merge`, `quantize` and `calibrate` to the command line."""
    for add in (_add_predict, _add_merge, _add_quantize, _add_calibrate):
        add(commands)


def _add_predict(commands: common.Commands) -> None:
    predict = commands.add_parser(
        "predict", parents=[common.model_option(), common.progress_option()],
        help="classify recordings of any length with a trained model",
        description="Classify audio files and folders (recursively; any format, rate or channel count). "
        "Each file is cut into overlapping windows of the model's clip length; every window gets its top-k "
        "labels, and each file a summary (the mean of its windows). Long recordings are streamed, so memory "
        "stays flat. Bad files are reported and skipped; the exit code is 1 if any failed.",
    )
    predict.add_argument("audio", nargs="+", type=Path, help="audio files or folders")
    predict.add_argument("--window", type=float,
                         help="window length in seconds, a tenth to 4 times the model's clip length (default: the "
                         "model's clip length)")
    predict.add_argument("--hop", type=float,
                         help="seconds between window starts, at least a tenth of the window (default: half the window)")
    predict.add_argument("--top-k", type=int, default=3, help="labels per window (default 3)")
    predict.add_argument("--min-confidence", type=float, default=0.0, metavar="P",
                         help="drop labels below probability P; windows left with none are not listed (default 0)")
    predict.add_argument("--unknown-below", type=float, metavar="P",
                         help="answer `unknown` (its guesses after it) where the top calibrated probability is below "
                         "P; default: the threshold stored in the model (see its model card), 0 turns it off")
    _add_outputs(predict)
    predict.add_argument("--offset", type=float, default=0.0, metavar="S",
                         help="classify each recording from S seconds on (times in the results stay times in the file)")
    predict.add_argument("--duration", type=float, metavar="S", help="classify only S seconds of each recording")
    predict.add_argument("--workers", type=int, default=1, metavar="N",
                         help="classify N files at once in N processes, the CPU threads divided between them; results "
                         "are the same as with one (default 1)")
    predict.add_argument("--shard", metavar="K/N",
                         help="classify only the K-th of N deterministic shares of the recordings (for job arrays: "
                         "each machine runs one share; join their tables with `audiocnn merge`)")
    predict.add_argument("--timeline", type=Path, metavar="PNG",
                         help="draw labels over time on the spectrogram: a .png for one file, else a folder")
    predict.add_argument("--denoise", action="store_true",
                         help="spectral-gating noise reduction (noisereduce) before classifying")
    predict.add_argument("--denoise-strength", type=float, metavar="S",
                         help="share of the background --denoise removes, 0-1 (default 0.5; 1 hurt accuracy, "
                         "see BENCHMARKS.md); implies --denoise")
    predict.add_argument("--batch-size", type=int, default=32, help="windows per model call (default 32)")
    predict.add_argument("--runtime", choices=("auto", "onnx", "torch", "int8"), default="auto",
                         help="inference engine: auto (ONNX Runtime when it reproduces torch; the graph is exported "
                         "once and cached), onnx, torch, or int8 (the bundle's 8-bit graph from `audiocnn quantize`: "
                         "about 2.5x faster on the CNN, top-1 agreement in BENCHMARKS.md)")
    predict.set_defaults(handler=_predict)


def _add_outputs(predict: argparse.ArgumentParser) -> None:
    """Where `predict`'s results go, and in which format (its options, in --help order)."""
    from audiocnn.inference.formats import FORMATS
    from audiocnn.inference.snippets import DEFAULT_PER_LABEL

    predict.add_argument("--format", default="table", choices=FORMATS,
                         help="table (default), csv, json, raven (Raven Pro selection table), audacity (label track), "
                         "kaleidoscope (Kaleidoscope's CSV), or scores (every class's probability per window, as "
                         "OpenSoundscape's score tables)")
    predict.add_argument("--out", type=Path, help="write the results to this file (default: standard output)")
    predict.add_argument("--out-dir", type=Path, metavar="DIR",
                         help="one result file per recording, mirroring the input folders (rec.wav -> "
                         "DIR/rec.audiocnn.selections.txt for raven, ...); each is written when its recording is done")
    predict.add_argument("--skip-existing", action=argparse.BooleanOptionalAction, default=True,
                         help="with --out-dir, skip recordings whose result file exists, so a killed run resumes where "
                         "it stopped (default: on)")
    predict.add_argument("--merge-consecutive", action="store_true",
                         help="raven, audacity, kaleidoscope: join a label's detections in consecutive windows into one")
    predict.add_argument("--snippets", type=Path, metavar="DIR",
                         help="write the audio of each detection (a window's top label, not `unknown`, at least "
                         "--min-confidence) for review: DIR/<label>/<recording>__<start>-<end>s__<confidence>.wav")
    predict.add_argument("--snippets-per-label", type=int, default=DEFAULT_PER_LABEL, metavar="N",
                         help=f"at most N snippets per label, the first in input order (default {DEFAULT_PER_LABEL})")


def _add_merge(commands: common.Commands) -> None:
    merge = commands.add_parser(
        "merge", help="join result tables (shards of a job array, or --out-dir's per-file tables) into one",
        description="Join the tables of `audiocnn predict --shard K/N` runs, or the per-recording tables of "
        "`audiocnn predict --out-dir`, "
        "into one table: the header once, recordings in path order, Raven selections numbered again. Two shards "
        "merged give the same table as one run over the whole folder. Formats: csv, scores, raven, kaleidoscope, json. "
        "Every table is checked first: if any one cannot be joined (not a result table, damaged, cut short, another "
        "format or other columns), each is reported, nothing is written and the exit code is 1, since a joined "
        "table silently missing a shard would be a lost result.",
    )
    merge.add_argument("tables", nargs="+", type=Path, help="result tables, or folders holding them (searched below)")
    merge.add_argument("--out", type=Path, required=True, help="the joined table (written atomically)")
    merge.set_defaults(handler=_merge)


def _add_quantize(commands: common.Commands) -> None:
    quantize = commands.add_parser(
        "quantize",
        parents=_bundle_tool_options(),
        help="add an 8-bit copy of a model for fast CPU prediction (`audiocnn predict --runtime int8`)",
        description="Calibrate and write an 8-bit (int8 weights, uint8 activations) ONNX copy of the bundle's "
        "backbone into the bundle, for `audiocnn predict --runtime int8`. Activation ranges come from --clips clips of "
        "the model's own dataset (stratified by label, never its held-out fold). Prints how often the 8-bit "
        "model's top-1 agrees with the float model's on those clips.",
    )
    quantize.add_argument("--clips", type=int, default=256,
                          help="calibration clips, at most (default 256; a smaller dataset gives all it has)")
    quantize.set_defaults(handler=_quantize)


def _add_calibrate(commands: common.Commands) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        parents=_bundle_tool_options(),
        help="fit a model's confidence on its validation clips, and the threshold for `unknown`",
        description="Fit the bundle's temperature (its probabilities then mean what they say) and the top "
        "probability below which `predict` answers `unknown`, on the validation clips the model was trained beside "
        "(the same split, never a training or test clip), and store both in its config.json. Training does this by "
        "itself; use it for a model trained before, or to refit with --keep-correct.",
    )
    calibrate.add_argument("--keep-correct", type=float, default=0.95, metavar="SHARE",
                           help="share of the validation clips the model gets right that keep their answer at the "
                           "`unknown` threshold (default 0.95)")
    calibrate.set_defaults(handler=_calibrate)


def _bundle_tool_options() -> list[argparse.ArgumentParser]:
    """What a command that adds to a trained bundle from its own dataset takes (quantize, calibrate)."""
    return [common.model_option(required=True, what="model bundle folder (written into)"),
            common.data_root_option("the dataset the model was trained on"), common.cache_option(),
            common.progress_option()]


def _predict(args: argparse.Namespace) -> int:
    from audiocnn.bundled import default_model
    from audiocnn.inference.denoise import DEFAULT_STRENGTH
    from audiocnn.inference.files import FolderSink, StreamSink, classify_files
    from audiocnn.inference.formats import ONE_RECORDING_FORMATS, SUFFIXES, PredictionWriter
    from audiocnn.inference.inputs import check_result_paths, collect, parse_shard, shard
    from audiocnn.inference.predictor import Predictor
    from audiocnn.inference.workers import Part, PredictorSpec

    _check_predict_options(args)
    inputs = collect(args.audio)
    if args.shard:
        inputs = shard(inputs, *parse_shard(args.shard))
        if not inputs:
            print(f"audiocnn: shard {args.shard} holds none of the recordings; nothing to do")
            return common.EXIT_OK
    files = [item.path for item in inputs]
    if args.out is not None:
        common.check_output(args.out, files)  # before the model loads: a refusal should be quick
    if args.out_dir is not None:
        check_result_paths(inputs, args.out_dir, SUFFIXES[args.format])
    elif args.format in ONE_RECORDING_FORMATS and len(inputs) > 1:
        raise ConfigError(f"--format {args.format} describes one recording per file: give --out-dir for "
                          f"{len(inputs)} recordings")
    if args.timeline is not None and len(files) > 1 and args.timeline.suffix.lower() == ".png":
        raise ConfigError(f"--timeline {args.timeline} names one picture, but there are {len(files)} files: "
                          "give a folder instead (each file gets FOLDER/NAME.timeline.png)")
    # With workers, each builds its own runtime; this process only plans and writes (a GB less).
    here = args.workers == 1 or len(inputs) == 1
    model = common.load_model(args.model, backbone=here and args.runtime != "int8")  # int8: its own graph
    strength = args.denoise_strength if args.denoise_strength is not None else DEFAULT_STRENGTH if args.denoise else 0.0
    options = {"window_seconds": args.window, "hop_seconds": args.hop, "batch_size": args.batch_size,
               "denoise": strength, "runtime": args.runtime, "unknown_below": args.unknown_below}
    predictor = Predictor(model, **options, build=here)

    def writer_for(stream: TextIO) -> PredictionWriter:
        return PredictionWriter(stream, args.format, top_k=args.top_k, min_confidence=args.min_confidence,
                                high_freq_hz=model.sample_rate / 2, can_abstain=predictor.unknown_below > 0,
                                merge_consecutive=args.merge_consecutive, labels=model.labels)

    run = {"on_file": _file_done(args, len(files), strength), "overview": args.timeline is not None,
           "part": Part(args.offset, args.duration), "workers": args.workers,
           "spec": PredictorSpec(args.model or default_model(), options),
           "progress": False if args.no_progress else None}
    if args.out_dir is not None:
        sink = FolderSink(args.out_dir, args.format, writer_for, skip_existing=args.skip_existing)
        result = classify_files(predictor, inputs, sink, **run)
    else:
        with common.output_file(args.out, files) as out:
            result = classify_files(predictor, inputs, StreamSink(writer_for(out)), **run)
    return common.EXIT_ERROR if result.failed else common.EXIT_OK


def _check_predict_options(args: argparse.Namespace) -> None:
    """Option values and combinations that cannot work, refused before anything is loaded."""
    from audiocnn.inference.formats import DETECTION_FORMATS

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1 (got {args.top_k})")
    if not 0.0 <= args.min_confidence <= 1.0:
        raise ConfigError(f"--min-confidence must be between 0 and 1 (got {args.min_confidence:g})")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1 (got {args.workers})")
    if args.snippets_per_label < 1:
        raise ConfigError(f"--snippets-per-label must be at least 1 (got {args.snippets_per_label})")
    if args.offset < 0 or (args.duration is not None and args.duration <= 0):
        raise ConfigError("--offset must not be negative and --duration must be positive")
    if args.out is not None and args.out_dir is not None:
        raise ConfigError("give --out (one table) or --out-dir (a table per recording), not both")
    if args.merge_consecutive and args.format not in DETECTION_FORMATS:
        raise ConfigError(f"--merge-consecutive joins detections, which {', '.join(DETECTION_FORMATS)} list; "
                          f"--format {args.format} lists windows")
    if args.timeline is not None and (args.offset or args.duration is not None):
        raise ConfigError("--timeline draws whole recordings; leave out --offset and --duration")


def _file_done(args: argparse.Namespace, n_files: int, denoise: float):  # noqa: ANN202 - a FileDone or None
    """What happens to each classified recording besides its result: its timeline, its snippets."""
    timeline = _timeline_drawer(args.timeline, n_files, denoise)
    snippets = None
    if args.snippets is not None:
        from audiocnn.inference.detections import detections
        from audiocnn.inference.snippets import SnippetWriter

        writer = SnippetWriter(args.snippets, args.snippets_per_label, args.min_confidence)

        def snippets(item, prediction) -> None:  # noqa: ANN001
            found = detections(prediction, 1, args.min_confidence, merge_consecutive=args.merge_consecutive)
            writer.add(item, [d for d in found if d.rank == 1])
    if timeline is None and snippets is None:
        return None

    def done(item, prediction, overview) -> None:  # noqa: ANN001
        if timeline is not None:
            timeline(prediction, overview)
        if snippets is not None:
            snippets(item, prediction)

    return done


def _timeline_drawer(target: Path | None, n_files: int, denoise: float):  # noqa: ANN202 - a FileDone or None
    """Draws each file's timeline to `target` (a .png for one file, else a folder); None without --timeline."""
    if target is None:
        return None
    from audiocnn.viz.timeline import save_timeline, timeline_path  # matplotlib only when a picture is asked for

    return lambda result, overview: save_timeline(result, overview, timeline_path(target, result.path, n_files),
                                                  denoised=denoise > 0)


def _merge(args: argparse.Namespace) -> int:
    from audiocnn.inference.tables import merge, result_tables

    # A table given by name is never written over; an earlier joined table found in a folder is left out.
    common.check_output(args.out, [path for path in args.tables if path.is_file()])
    tables = result_tables(args.tables, leave_out=args.out)
    if not tables:
        raise ConfigError(f"--out {args.out}: is the only table found; nothing else to join")
    merged = merge(tables, args.out)
    for failure in merged.failures:
        common.error(failure)
    if merged.failures:
        common.error(f"{len(merged.failures)} of {len(tables)} table(s) cannot be joined; nothing written to {args.out}")
        return common.EXIT_ERROR
    print(f"{args.out}: {len(tables)} {merged.fmt} table(s) joined, {merged.rows} "
          f"{'file' if merged.fmt == 'json' else 'row'}(s)")
    return common.EXIT_OK


def _quantize(args: argparse.Namespace) -> int:
    from audiocnn.inference.quantize import INT8_GRAPH, quantize

    model = common.load_model(args.model)
    info = quantize(model, args.data_root, n_clips=args.clips, cache_dir=args.cache_dir,
                    progress=not args.no_progress)
    used = info["calibration_clips"]
    fewer = f" (of {args.clips} asked: all the usable clips of its training data)" if used < args.clips else ""
    print(f"{args.model / INT8_GRAPH}: calibrated on {used} clip{'s' if used != 1 else ''}{fewer}; top-1 agrees "
          f"with the float model on {info['top1_agreement_on_calibration']:.1%} of them")
    return common.EXIT_OK


def _calibrate(args: argparse.Namespace) -> int:
    from audiocnn import bundle
    from audiocnn.cli.training import warn_unfitted
    from audiocnn.training.calibration import calibrate_bundle, threshold_summary

    if not 0.5 <= args.keep_correct < 1.0:
        raise ConfigError(f"--keep-correct must be in [0.5, 1) (got {args.keep_correct:g})")
    model = common.load_model(args.model)
    calibration = calibrate_bundle(model, args.data_root, cache_dir=args.cache_dir, progress=not args.no_progress,
                                   keep_correct=args.keep_correct)
    bundle.write_calibration(args.model, calibration)
    print(f"{args.model}: temperature {calibration.temperature:g} (validation NLL {calibration.nll_before:.3f} -> "
          f"{calibration.nll_after:.3f}, ECE {calibration.ece_before:.3f} -> {calibration.ece_after:.3f}, "
          f"{calibration.clips} validation clips)")
    print(threshold_summary(calibration.to_dict()))
    warn_unfitted({str(args.model): calibration.to_dict()})
    return common.EXIT_OK
