"""Does `predict --denoise` help under background noise? ESC-50 test-fold clips mixed with
recorded-like noise at 20, 10, 5 and 0 dB SNR, classified with and without denoising by a
model that never saw that fold (a CV fold model, `RUN/foldK/model`). The clean clips are also
played 20 dB quieter: a recorder's level is not ESC-50's.

The noise is `audiocnn.training.robustness`'s recorded-like noise (pink, drifting, with a faint mains
hum), the same that `cv` scores every fold under; here each clip's noise is seeded by its
index in the fold. Mixtures are written
as float WAV files and classified through the same `Predictor` the CLI uses.

    .venv/bin/python benchmarks/denoise.py --model RUN/fold1/model --fold 1 \\
        --data ../shared/data/esc50 --json benchmarks/results/denoise.json
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from audiocnn import bundle
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import Predictor
from audiocnn.training.robustness import degrade, recorded_like_noise

SNRS_DB = (20, 10, 5, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a bundle that was not trained on --fold")
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/esc50"))
    parser.add_argument("--limit", type=int, help="only the first N clips of the fold (quick look)")
    parser.add_argument("--strength", type=float, default=0.5, help="--denoise-strength (default 0.5)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    model = bundle.load(args.model)
    bundle.require_held_out(model, args.fold)
    with (args.data / "meta" / "esc50.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["fold"]) == args.fold][: args.limit]
    plain, denoising = Predictor(model), Predictor(model, PredictOptions(denoise_strength=args.strength))
    conditions = ["clean", "clean, 20 dB quieter", *(f"{snr} dB" for snr in SNRS_DB)]
    correct = {(c, d): 0 for c in conditions for d in (False, True)}
    seconds = {False: 0.0, True: 0.0}
    with tempfile.TemporaryDirectory() as work:
        for i, row in enumerate(tqdm(rows, unit="clip")):
            clip, rate = sf.read(args.data / "audio" / row["filename"], dtype="float32")
            noise = recorded_like_noise(len(clip), rate, np.random.default_rng(i))
            for condition in conditions:
                if condition == "clean":
                    wave = clip
                else:
                    wave = degrade(clip, "quiet" if condition.startswith("clean") else f"snr{condition.split()[0]}", noise, rate)
                path = Path(work) / "mixture.wav"
                sf.write(path, wave, rate, subtype="FLOAT")
                for denoise, predictor in ((False, plain), (True, denoising)):
                    start = time.perf_counter()
                    summary = predictor.predict(path).summary
                    seconds[denoise] += time.perf_counter() - start
                    correct[condition, denoise] += model.labels[int(summary.argmax())] == row["category"]
    table = [{"condition": c, "accuracy": correct[c, False] / len(rows),
              "accuracy_denoised": correct[c, True] / len(rows)} for c in conditions]
    result = {"machine": platform.node(), "model": str(args.model), "fold": args.fold, "clips": len(rows),
              "strength": args.strength,
              "seconds_plain": seconds[False], "seconds_denoised": seconds[True], "table": table}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nfold {args.fold}, {len(rows)} clips, --denoise-strength {args.strength:g}\n\n| condition | accuracy | with --denoise | difference |\n|---|---:|---:|---:|")
    for r in table:
        diff = 100 * (r["accuracy_denoised"] - r["accuracy"])
        print(f"| {r['condition']} | {100 * r['accuracy']:.1f}% | {100 * r['accuracy_denoised']:.1f}% | {diff:+.1f} |")
    print(f"\nclassification time: {seconds[False]:.0f} s plain, {seconds[True]:.0f} s with --denoise")


if __name__ == "__main__":
    main()
