"""`audiocnn export`: a model as one ONNX graph, waveform in and probabilities out, for devices."""

from __future__ import annotations

import argparse
from pathlib import Path

from audiocnn.cli import common


def add_commands(commands: common.Commands) -> None:
    """Add `export` (a bundle as one ONNX graph) to the command line."""
    export = commands.add_parser(
        "export", parents=[common.model_option()],
        help="write a model as one ONNX graph (waveform in, probabilities out) for devices with ONNX Runtime",
        description="Write the model as a single ONNX graph that needs nothing but ONNX Runtime: input `waveform`, "
        "float32 (batch, samples), mono windows of the model's clip length at its sample rate; output "
        "`probabilities`, float32 (batch, classes), calibrated as `audiocnn predict` reports them. The spectrogram "
        "frontend is inside the graph. Labels, sample rate, window length, frontend, normalisation and calibration "
        "are in the graph's metadata (metadata_props; examples/onnx_classify.py reads them). Before writing, the "
        "graph is run with ONNX Runtime and its probabilities are compared with the torch model's (at most 1e-4 "
        "apart, or nothing is written).",
        epilog="example: audiocnn export --out esc50.onnx --int8 --check examples/",
    )
    export.add_argument("--out", type=Path, required=True, metavar="FILE.onnx",
                        help="the graph file to write (replaced only once complete and checked)")
    export.add_argument("--int8", action="store_true",
                        help="with the model's 8-bit backbone from `audiocnn quantize` (run that first): about a "
                        "third of the size, and faster on most CPUs; prints how often its top-1 agrees with the float graph")
    export.add_argument("--check", nargs="+", type=Path, metavar="AUDIO",
                        help="recordings (files or folders) to check the graph on, window by window "
                        "(default: synthetic test signals; give real ones to judge --int8's agreement)")
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from audiocnn.bundled import default_model
    from audiocnn.inference.export import check_out, export

    files = common.expand_paths(args.check) if args.check else []
    check_out(args.out, args.model or default_model())  # before the model loads: a refusal should be quick
    common.check_output(args.out, files)
    report = export(common.load_model(args.model), args.out, int8=args.int8, check=files)
    seconds = report.window / report.sample_rate
    precision = "8-bit backbone" if report.int8 else "float32"
    print(f"{args.out}: waveform (batch, {report.window}) = {seconds:g} s at {report.sample_rate} Hz -> probabilities "
          f"(batch, {report.labels}); {precision}, {report.size / 1e6:.1f} MB")
    print(f"checked on {report.checked_on}: the float graph's probabilities are within {report.max_difference:.1g} "
          "of the torch model's")
    if report.int8:
        agreement = report.top1_agreement or 0.0
        synthetic = "" if files else " (synthetic signals, unlike any class: pass --check AUDIO to judge)"
        print(f"8-bit graph: top-1 agrees with the float graph on {agreement:.1%} of those windows{synthetic}; on "
              f"{report.int8_info.get('top1_agreement_on_calibration', float('nan')):.1%} of "
              f"{report.int8_info.get('calibration_clips', '?')} calibration clips when the model was quantized")
    return common.EXIT_OK
