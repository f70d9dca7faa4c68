"""Real-time factor and peak memory of `audiocnn predict` on hour-long recordings.

Builds 16-bit 16 kHz WAV soundscapes by concatenating ESC-50 clips (in a fixed shuffled
order, cycling through all 2000), then runs the real CLI on each in a fresh process, as a
user would, and records wall time and the process's peak RSS. The CLI's fixed start-up
(imports, loading the model) is measured on one 5-second clip and reported separately.
Each `--runtimes` entry (predict --runtime) and each of `--models` is measured in the same run,
so their ratio is fair on a shared machine.

    .venv/bin/python benchmarks/predict.py --data ../shared/data/esc50 --hours 1 10 \\
        --runtimes auto torch --json benchmarks/results/predict.json
    .venv/bin/python benchmarks/predict.py --hours 1 --models bundled runs/birdnet-head runs/ensemble \\
        --json benchmarks/results/predict_birdnet.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

RATE = 16_000
MEASURE = r"""
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
wall = time.perf_counter() - start
print(json.dumps({"code": code, "wall_s": wall,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def soundscape(clips: list[Path], hours: float, out: Path) -> Path:
    """Concatenate clips (cycling) to `hours` of audio; written block by block, memory stays flat."""
    target = int(hours * 3600 * RATE)
    if out.is_file() and sf.info(out).frames == target:
        return out
    written = 0
    with sf.SoundFile(out, "w", RATE, 1, subtype="PCM_16") as handle:
        while written < target:
            for clip in clips:
                wave, rate = sf.read(clip, dtype="float32")
                assert rate == RATE, f"{clip}: expected {RATE} Hz"
                piece = wave[: target - written]
                handle.write(piece)
                written += len(piece)
                if written >= target:
                    break
    return out


def measure(args: list[str]) -> dict[str, float]:
    """Run a command in a fresh process; its wall time and peak RSS."""
    result = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True, text=True, check=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if figures["code"] != 0:
        raise SystemExit(f"{' '.join(args)} failed with exit code {figures['code']}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/esc50"))
    parser.add_argument("--models", nargs="+", default=["bundled"], help="bundles (`bundled`: the bundled model)")
    parser.add_argument("--hours", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "audiocnn-bench")
    parser.add_argument("--runtimes", nargs="+", default=["auto"], choices=["auto", "onnx", "torch", "int8"])
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `predict` options")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    clips = sorted((args.data / "audio").glob("*.flac"))
    np.random.default_rng(0).shuffle(clips)
    args.work.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "audiocnn", "predict", "--no-progress", "--format", "csv", "--out", "/dev/null",
            *args.extra]
    paths = {hours: soundscape(clips, hours, args.work / f"esc50-soundscape-{hours:g}h.wav") for hours in args.hours}
    rows, startups = [], {}
    for model in args.models:
        for runtime in args.runtimes:
            cli = [*base, *([] if model == "bundled" else ["--model", model]), "--runtime", runtime]
            measure([*cli, str(clips[0])])  # the first run of a model exports and caches its ONNX graph
            startup = startups[f"{model} {runtime}"] = measure([*cli, str(clips[0])])
            print(f"{model} {runtime}: start-up on one 5 s clip {startup['wall_s']:.2f} s, "
                  f"peak RSS {startup['peak_rss_mb']:.0f} MB")
            for hours, path in paths.items():
                figures = measure([*cli, str(path)])
                seconds = hours * 3600
                steady = figures["wall_s"] - startup["wall_s"]
                row = {"model": model, "runtime": runtime, "hours": hours, **figures,
                       "real_time_factor": seconds / figures["wall_s"],
                       "real_time_factor_after_startup": seconds / steady if steady > 0 else None}
                rows.append(row)
                print(json.dumps(row))
    result = {"machine": platform.node(), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "command": " ".join(base[1:]) + " [--model MODEL] --runtime RUNTIME", "startup": startups, "files": rows}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| model | runtime | recording | wall (s) | real-time factor | after start-up | peak RSS (MB) |\n"
          "|---|---|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['model']} | {row['runtime']} | {row['hours']:g} h | {row['wall_s']:.1f} | {row['real_time_factor']:.0f}× | "
              f"{row['real_time_factor_after_startup']:.0f}× | {row['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
