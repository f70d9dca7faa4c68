"""How fast is an `audiocnn export` graph, against `audiocnn predict`'s Predictor, on the same audio?

The examples (resampled to the model's rate by audiocnn's loader) are concatenated and looped to
`--minutes` of audio, written as one 16-bit WAV. Four engines classify it in the same run, in turn,
`--repeats` times (the best time of each is kept, so a busy neighbour on a shared machine hurts
every engine alike):

- `predict auto` / `predict int8`: `inference.predictor.Predictor` with `runtime="auto"` (torch
  frontend, ONNX Runtime backbone) or `"int8"` (the bundle's 8-bit backbone), as `audiocnn
  predict --runtime ...` runs it after start-up: decode, windows, batches of 32;
- `onnx float` / `onnx int8`: the exported graph (`export` / `export --int8`, frontend inside)
  in ONNX Runtime, as examples/onnx_classify.py uses it: the file read whole with soundfile,
  windows every half window, batches of `--batch`.

Figures are seconds of audio per second of wall time, and each engine's ratio to `predict auto`.
Export and start-up are not timed. Top-1 agreement of each graph's windows with its Predictor
counterpart is recorded as a check that they computed the same thing.

    .venv/bin/python benchmarks/export_speed.py --minutes 10 --json benchmarks/results/export_speed.json
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiocnn import audio, bundle
from audiocnn.bundled import default_model
from audiocnn.inference.export import INPUT, export
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import Predictor
from audiocnn.inference.runtimes import onnx_session as session

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def looped_examples(rate: int, minutes: float, out: Path) -> Path:
    """The example recordings at `rate`, one after another, repeated to `minutes`; a 16-bit WAV."""
    pieces = [audio.load(p, rate) for p in sorted(EXAMPLES.iterdir()) if p.suffix in {".wav", ".flac", ".ogg"}]
    one_pass = np.concatenate(pieces)
    target = int(minutes * 60 * rate)
    sf.write(out, np.resize(one_pass, target), rate, subtype="PCM_16")
    return out


def onnx_probabilities(runner, path: Path, window: int, batch: int) -> np.ndarray:  # noqa: ANN001 - a session
    """Window probabilities of a recording at the model's rate, as examples/onnx_classify.py computes them."""
    wave, _ = sf.read(path, dtype="float32")
    count = 1 + max(0, -(-(len(wave) - window) // (window // 2)))
    windows = np.zeros((count, window), np.float32)
    for i in range(count):
        part = wave[i * (window // 2) : i * (window // 2) + window]
        windows[i, : len(part)] = part
    return np.concatenate([runner.run(None, {INPUT: windows[i : i + batch]})[0] for i in range(0, count, batch)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="bundle with an 8-bit backbone (default: the bundled model)")
    parser.add_argument("--minutes", type=float, default=10.0, help="audio to classify (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="times each engine runs; the best is kept (default 3)")
    parser.add_argument("--batch", type=int, default=8, help="windows per ONNX graph call (default 8)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="threads for torch and ONNX Runtime (default: torch's, %(default)s here)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "audiocnn-bench")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    folder = args.model or default_model()
    model, lean = bundle.load(folder), bundle.load(folder, backbone=False)
    recording = looped_examples(model.sample_rate, args.minutes, args.work / f"examples-{args.minutes:g}min.wav")
    window = round(model.clip_seconds * model.sample_rate)
    graphs = {kind: export(model, args.work / f"model-{kind}.onnx", int8=kind == "int8").path
              for kind in ("float", "int8")}
    predictors = {"auto": Predictor(model, PredictOptions(runtime="auto")), "int8": Predictor(lean, PredictOptions(runtime="int8"))}
    sessions = {kind: session(path, memory_arena=True) for kind, path in graphs.items()}  # as on a device
    engines = {
        **{f"predict {runtime}": functools.partial(lambda p: p.predict(recording).probabilities, predictor)
           for runtime, predictor in predictors.items()},
        **{f"onnx {kind}": functools.partial(onnx_probabilities, runner, recording, window, args.batch)
           for kind, runner in sessions.items()},
    }
    best = dict.fromkeys(engines, float("inf"))
    outputs: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, classify in engines.items():
            start = time.perf_counter()
            outputs[name] = classify()
            best[name] = min(best[name], time.perf_counter() - start)
    seconds = args.minutes * 60
    rows = [{"engine": name, "wall_s": best[name], "audio_s_per_s": seconds / best[name],
             "vs_predict_auto": best["predict auto"] / best[name]} for name in engines]
    agreement = {f"onnx {kind} vs predict {'auto' if kind == 'float' else 'int8'}":
                 float(np.mean(outputs[f"onnx {kind}"].argmax(1) ==
                               outputs[f"predict {'auto' if kind == 'float' else 'int8'}"].argmax(1)))
                 for kind in graphs}
    result = {"date": datetime.date.today().isoformat(), "machine": platform.node(), "cpu": cpu_model(),
              "cores": os.cpu_count(), "threads": args.threads, "minutes": args.minutes, "repeats": args.repeats,
              "onnx_batch": args.batch, "windows": len(outputs["predict auto"]), "bundle": str(folder),
              "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__,
              "engines": rows, "window_top1_agreement": agreement}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.minutes:g} min of audio ({result['windows']} windows), {args.threads} threads, {result['cpu']}, "
          f"best of {args.repeats}\n\n| engine | wall (s) | audio s per s | vs predict auto |\n|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['engine']} | {row['wall_s']:.1f} | {row['audio_s_per_s']:.0f} | {row['vs_predict_auto']:.2f}× |")
    print("\nwindow top-1 agreement: " + ", ".join(f"{k} {v:.1%}" for k, v in agreement.items()))


if __name__ == "__main__":
    main()
