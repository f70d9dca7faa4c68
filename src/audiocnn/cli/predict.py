"""`audiocnn predict` and `audiocnn quantize`: classify recordings, and make a bundle's fast 8-bit copy."""

from __future__ import annotations

import argparse
from pathlib import Path

from audiocnn.cli import common
from audiocnn.errors import ConfigError


def add_commands(commands: common.Commands) -> None:
    from audiocnn.inference.formats import FORMATS

    predict = commands.add_parser(
        "predict", parents=[common.model_option(), common.progress_option()],
        help="classify recordings of any length with a trained model",
        description="Classify audio files and folders (recursively; any format, rate or channel count). "
        "Each file is cut into overlapping windows of the model's clip length; every window gets its top-k "
        "labels, and each file a summary (the mean of its windows). Long recordings are streamed, so memory "
        "stays flat. Bad files are reported and skipped; the exit code is 1 if any failed.",
    )
    predict.add_argument("audio", nargs="+", type=Path, help="audio files or folders")
    predict.add_argument("--window", type=float, help="window length in seconds (default: the model's clip length)")
    predict.add_argument("--hop", type=float, help="seconds between window starts (default: half the window)")
    predict.add_argument("--top-k", type=int, default=3, help="labels per window (default 3)")
    predict.add_argument("--min-confidence", type=float, default=0.0, metavar="P",
                         help="drop labels below probability P; windows left with none are not listed (default 0)")
    predict.add_argument("--unknown-below", type=float, metavar="P",
                         help="answer `unknown` (its guesses after it) where the top calibrated probability is below "
                         "P; default: the threshold stored in the model (see its model card), 0 turns it off")
    predict.add_argument("--format", default="table", choices=FORMATS,
                         help="table (default), csv, json, or raven (a Raven Pro selection table)")
    predict.add_argument("--out", type=Path, help="write the results to this file (default: standard output)")
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

    quantize = commands.add_parser(
        "quantize",
        parents=_bundle_tool_options(),
        help="add an 8-bit copy of a model for fast CPU prediction (`audiocnn predict --runtime int8`)",
        description="Calibrate and write an 8-bit (int8 weights, uint8 activations) ONNX copy of the bundle's "
        "backbone into the bundle, for `audiocnn predict --runtime int8`. Activation ranges come from --clips clips of "
        "the model's own dataset (stratified by label, never its held-out fold). Prints how often the 8-bit "
        "model's top-1 agrees with the float model's on those clips.",
    )
    quantize.add_argument("--clips", type=int, default=256, help="calibration clips (default 256)")
    quantize.set_defaults(handler=_quantize)

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
    from audiocnn.inference.denoise import DEFAULT_STRENGTH
    from audiocnn.inference.files import classify_files
    from audiocnn.inference.formats import PredictionWriter
    from audiocnn.inference.predictor import Predictor

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1 (got {args.top_k})")
    if not 0.0 <= args.min_confidence <= 1.0:
        raise ConfigError(f"--min-confidence must be between 0 and 1 (got {args.min_confidence:g})")
    files = common.expand_paths(args.audio)
    if args.out is not None:
        common.check_output(args.out, files)  # before the model loads: a refusal should be quick
    if args.timeline is not None and len(files) > 1 and args.timeline.suffix.lower() == ".png":
        raise ConfigError(f"--timeline {args.timeline} names one picture, but there are {len(files)} files: "
                          "give a folder instead (each file gets FOLDER/NAME.timeline.png)")
    model = common.load_model(args.model, backbone=args.runtime != "int8")  # int8: its own graph
    strength = args.denoise_strength if args.denoise_strength is not None else DEFAULT_STRENGTH if args.denoise else 0.0
    predictor = Predictor(model, window_seconds=args.window, hop_seconds=args.hop, batch_size=args.batch_size,
                          denoise=strength, runtime=args.runtime, unknown_below=args.unknown_below)
    with common.output_file(args.out, files) as out:
        writer = PredictionWriter(out, args.format, top_k=args.top_k, min_confidence=args.min_confidence,
                                  high_freq_hz=model.sample_rate / 2, can_abstain=predictor.unknown_below > 0)
        result = classify_files(predictor, files, writer, on_file=_timeline_drawer(args.timeline, len(files), strength),
                                overview=args.timeline is not None, progress=False if args.no_progress else None)
    return common.EXIT_ERROR if result.failed else common.EXIT_OK


def _timeline_drawer(target: Path | None, n_files: int, denoise: float):  # noqa: ANN202 - a FileDone or None
    """Draws each file's timeline to `target` (a .png for one file, else a folder); None without --timeline."""
    if target is None:
        return None
    from audiocnn.viz.timeline import save_timeline, timeline_path  # matplotlib only when a picture is asked for

    return lambda result, overview: save_timeline(result, overview, timeline_path(target, result.path, n_files),
                                                  denoised=denoise > 0)


def _quantize(args: argparse.Namespace) -> int:
    from audiocnn.inference.quantize import INT8_GRAPH, quantize

    model = common.load_model(args.model)
    info = quantize(model, args.data_root, n_clips=args.clips, cache_dir=args.cache_dir,
                    progress=not args.no_progress)
    print(f"{args.model / INT8_GRAPH}: calibrated on {info['calibration_clips']} clips; top-1 agrees with the "
          f"float model on {info['top1_agreement_on_calibration']:.1%} of them")
    return common.EXIT_OK


def _calibrate(args: argparse.Namespace) -> int:
    from audiocnn import bundle
    from audiocnn.training.calibration import calibrate_bundle

    if not 0.5 <= args.keep_correct < 1.0:
        raise ConfigError(f"--keep-correct must be in [0.5, 1) (got {args.keep_correct:g})")
    model = common.load_model(args.model)
    calibration = calibrate_bundle(model, args.data_root, cache_dir=args.cache_dir, progress=not args.no_progress,
                                   keep_correct=args.keep_correct)
    bundle.write_calibration(args.model, calibration)
    print(f"{args.model}: temperature {calibration.temperature:g} (validation NLL {calibration.nll_before:.3f} -> "
          f"{calibration.nll_after:.3f}, ECE {calibration.ece_before:.3f} -> {calibration.ece_after:.3f}); "
          f"`unknown` below {calibration.unknown_below:.2f}, fitted on {calibration.clips} validation clips")
    return common.EXIT_OK
