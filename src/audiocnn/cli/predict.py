"""`audiocnn predict` and `audiocnn quantize`: classify recordings, and make a bundle's fast 8-bit copy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from audiocnn.cli import common
from audiocnn.errors import ConfigError

if TYPE_CHECKING:
    from audiocnn.inference.options import PredictOptions


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
    from audiocnn.inference.options import ClassifyOptions, EngineOptions, OutputOptions

    common.add_model_options(predict, ClassifyOptions, METAVARS)
    common.add_model_options(predict, OutputOptions, METAVARS)
    _add_outputs(predict)
    predict.add_argument("--workers", type=int, default=1, metavar="N",
                         help="classify N files at once in N processes, the CPU threads divided between them; results "
                         "are the same as with one (default 1)")
    predict.add_argument("--shard", metavar="K/N",
                         help="classify only the K-th of N deterministic shares of the recordings (for job arrays: "
                         "each machine runs one share; join their tables with `audiocnn merge`)")
    common.add_model_options(predict, EngineOptions, METAVARS)
    predict.set_defaults(handler=_predict)


#: The placeholders `--help` shows for the options' values (P: a probability, S: seconds).
METAVARS = {"window": "S", "hop": "S", "unknown_below": "P", "denoise_strength": "SHARE", "offset": "S",
            "duration": "S", "top_k": "K", "min_confidence": "P", "batch_size": "N"}


def _add_outputs(predict: argparse.ArgumentParser) -> None:
    """Where `predict`'s results go (its options, in --help order)."""
    from audiocnn.inference.snippets import DEFAULT_PER_LABEL

    predict.add_argument("--out", type=Path, help="write the results to this file (default: standard output)")
    predict.add_argument("--out-dir", type=Path, metavar="DIR",
                         help="one result file per recording, mirroring the input folders (rec.wav -> "
                         "DIR/rec.audiocnn.selections.txt for raven, ...); each is written when its recording is done")
    predict.add_argument("--skip-existing", action=argparse.BooleanOptionalAction, default=True,
                         help="with --out-dir, skip recordings whose result file exists, so a killed run resumes where "
                         "it stopped (default: on)")
    predict.add_argument("--timeline", type=Path, metavar="PNG",
                         help="draw labels over time on the spectrogram: a .png for one file, else a folder")
    predict.add_argument("--snippets", type=Path, metavar="DIR",
                         help="write the audio of each detection (a window's top label, not `unknown`, at least "
                         "--min-confidence) for review: DIR/<label>/<recording>__<start>-<end>s__<confidence>.wav")
    predict.add_argument("--snippets-per-label", type=int, default=DEFAULT_PER_LABEL, metavar="N",
                         help=f"at most N snippets per label, the first in input order (default {DEFAULT_PER_LABEL})")
    predict.add_argument("--snippet-pad", type=float, default=0.0, metavar="S",
                         help="--snippets: seconds of the recording either side of each detection (default 0)")


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
    from audiocnn.inference.files import FolderSink, StreamSink, classify_files
    from audiocnn.inference.formats import SUFFIXES, PredictionWriter
    from audiocnn.inference.inputs import check_result_paths, collect, parse_shard, shard
    from audiocnn.inference.label_filter import shown_labels
    from audiocnn.inference.options import ONE_RECORDING_FORMATS, PredictOptions
    from audiocnn.inference.predictor import Predictor
    from audiocnn.inference.workers import PredictorSpec
    from audiocnn.tabletext import read_text

    for name in ("labels_include", "labels_exclude"):  # a file of labels, or the labels themselves
        value = getattr(args, name)
        if value is not None and Path(value).is_file():
            setattr(args, name, read_text(Path(value)))
    options = common.model_from(args, PredictOptions)
    _check_run_options(args, options)
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
        check_result_paths(inputs, args.out_dir, SUFFIXES[options.format])
    elif options.format in ONE_RECORDING_FORMATS and len(inputs) > 1:
        raise ConfigError(f"--format {options.format} describes one recording per file: give --out-dir for "
                          f"{len(inputs)} recordings")
    if args.timeline is not None and len(files) > 1 and args.timeline.suffix.lower() == ".png":
        raise ConfigError(f"--timeline {args.timeline} names one picture, but there are {len(files)} files: "
                          "give a folder instead (each file gets FOLDER/NAME.timeline.png)")
    # With workers, each builds its own runtime; this process only plans and writes (a GB less).
    here = args.workers == 1 or len(inputs) == 1
    # int8 has its own graph, and ONNX a checked one after the first run: the CNN is built only when needed
    model = common.load_model(args.model, backbone=here and options.runtime == "torch")
    shown_labels(model.labels, options.labels_include, options.labels_exclude)  # a wrong name: before any work
    predictor = Predictor(model, options, build=here)

    def writer_for(stream: TextIO) -> PredictionWriter:
        return PredictionWriter(stream, options, high_freq_hz=model.sample_rate / 2,
                                can_abstain=predictor.unknown_below > 0, labels=model.labels)

    run = {"on_file": _file_done(args, options, len(files)), "overview": args.timeline is not None,
           "workers": args.workers, "spec": PredictorSpec(args.model or default_model(), options),
           "progress": False if args.no_progress else None}
    if args.out_dir is not None:
        sink = FolderSink(args.out_dir, options.format, writer_for, skip_existing=args.skip_existing)
        result = classify_files(predictor, inputs, sink, **run)
    else:
        with common.output_file(args.out, files) as out:
            result = classify_files(predictor, inputs, StreamSink(writer_for(out)), **run)
    return common.EXIT_ERROR if result.failed else common.EXIT_OK


def _check_run_options(args: argparse.Namespace, options: PredictOptions) -> None:
    """The command's own options (where results go, how the work is split), refused before anything loads;
    the classification options were checked by their model."""
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1 (got {args.workers})")
    if not 0 <= args.snippet_pad <= 60:  # NaN fails too
        raise ConfigError(f"--snippet-pad must be 0-60 s (got {args.snippet_pad})")
    if args.snippets_per_label < 1:
        raise ConfigError(f"--snippets-per-label must be at least 1 (got {args.snippets_per_label})")
    if args.out is not None and args.out_dir is not None:
        raise ConfigError("give --out (one table) or --out-dir (a table per recording), not both")
    if args.timeline is not None and (options.offset or options.duration is not None):
        raise ConfigError("--timeline draws whole recordings; leave out --offset and --duration")


def _file_done(args: argparse.Namespace, options: PredictOptions, n_files: int):  # noqa: ANN202 - FileDone or None
    """What happens to each classified recording besides its result: its timeline, its snippets."""
    timeline = _timeline_drawer(args.timeline, n_files, options.strength)
    snippets = None
    if args.snippets is not None:
        from audiocnn.inference.detections import detections
        from audiocnn.inference.snippets import SnippetWriter

        writer = SnippetWriter(args.snippets, args.snippets_per_label, options.min_confidence, args.snippet_pad)

        def snippets(item, prediction) -> None:  # noqa: ANN001
            found = detections(prediction, 1, options.min_confidence, merge_consecutive=options.merge_consecutive)
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
    if not 0.5 <= args.keep_correct < 1.0:
        raise ConfigError(f"--keep-correct must be in [0.5, 1) (got {args.keep_correct:g})")
    calibrate_into(args.model, args.data_root, args.cache_dir, not args.no_progress, args.keep_correct)
    return common.EXIT_OK


def calibrate_into(model_path: Path, data_root: Path, cache_dir: Path | None, progress: bool,
                   keep_correct: float = 0.95) -> None:
    """Fit a bundle's calibration on its validation clips, store it in the bundle, and say what it is."""
    from audiocnn import bundle
    from audiocnn.cli.training import warn_unfitted
    from audiocnn.training.calibration import calibrate_bundle, threshold_summary

    model = common.load_model(model_path)
    calibration = calibrate_bundle(model, data_root, cache_dir=cache_dir, progress=progress, keep_correct=keep_correct)
    bundle.write_calibration(model_path, calibration)
    print(f"{model_path}: temperature {calibration.temperature:g} (validation NLL {calibration.nll_before:.3f} -> "
          f"{calibration.nll_after:.3f}, ECE {calibration.ece_before:.3f} -> {calibration.ece_after:.3f}, "
          f"{calibration.clips} validation clips)")
    print(threshold_summary(calibration.to_dict()))
    warn_unfitted({str(model_path): calibration.to_dict()})
