"""How often a model gives a class to a window that holds nothing but a noise floor (issue 31).

A field recording is mostly noise floor: the recorder's self-noise, room tone, a hum. A model
that hears a class in it fills a detection table with false events (an outside check found all
209 quiet windows of a 25-minute recording labelled `crickets`). This script writes noise-only
recordings and classifies them as `audiocnn predict` does (the model's windows, half a window
apart, its calibrated probabilities and `unknown` threshold), and reports, per kind and level,
the share of windows given a class (anything but `unknown`) and the class given most.

The noises are made by `audiocnn.datasets.noise_floors` from seed 0 (training floors come from
another stream of numbers), so nothing is downloaded:
- white, pink (1/f) and brown (1/f²) noise at -30 to -90 dBFS (RMS);
- recorder self-noise: white noise through a gentle high shelf (hiss), at -70 and -85 dBFS;
- room tone (brown and pink noise below 2 kHz) at -50 and -65 dBFS;
- mains hum at 50 and 60 Hz with odd harmonics, at -40 and -60 dBFS, over hiss 25 dB below;
- digital silence;
- with `--beds DIR`, wind-free ambience: each background bed of `training_audio.py backgrounds`
  (steady machinery, hum and room ambience from Debian packages), looped, at -45 and -60 dBFS.

    .venv/bin/python benchmarks/noise_floors.py --json benchmarks/results/noise_floors.json
    .venv/bin/python benchmarks/noise_floors.py --model runs/cpu/fold1/model
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

from audiocnn import audio, bundle
from audiocnn.bundled import default_model
from audiocnn.datasets.noise_floors import at_level, floor
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import UNKNOWN, Predictor

SECONDS = 30.0
LEVELS_DBFS = (-30, -40, -50, -60, -70, -80, -90)


def floors(rate: int, seed: int = 0, beds: Path | None = None) -> dict[str, np.ndarray]:
    """Every noise floor of the module notes, `SECONDS` long at `rate` (`datasets.noise_floors` makes them)."""
    rng = np.random.default_rng(seed)
    n = int(SECONDS * rate)
    made: dict[str, np.ndarray] = {}
    for kind in ("white", "pink", "brown"):
        for level in LEVELS_DBFS:
            made[f"{kind} noise {level} dBFS"] = floor(kind, level, n, rate, rng)
    for level in (-70, -85):
        made[f"recorder self-noise {level} dBFS"] = floor("self-noise", level, n, rate, rng)
    for level in (-50, -65):
        made[f"room tone {level} dBFS"] = floor("room tone", level, n, rate, rng)
    for mains in (50, 60):
        for level in (-40, -60):
            made[f"mains hum {mains} Hz {level} dBFS"] = floor(f"hum {mains} Hz", level, n, rate, rng)
    made["digital silence"] = np.zeros(n, np.float32)
    for path in audio.audio_files(beds) if beds is not None else []:
        bed = np.resize(audio.load(path, rate), n)  # looped to the floors' length
        for level in (-45, -60):
            made[f"ambience {path.stem} {level} dBFS"] = at_level(bed, level)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a bundle (default: the bundled model)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--beds", type=Path, help="also the background beds in this folder (training_audio.py)")
    args = parser.parse_args()

    model_dir = args.model or default_model()
    model = bundle.load(model_dir)
    predictor = Predictor(model, PredictOptions(runtime="torch"))
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, samples in floors(model.sample_rate, beds=args.beds).items():
            path = Path(folder) / "floor.wav"
            sf.write(path, samples, model.sample_rate, subtype="FLOAT")
            result = predictor.predict(path)
            answers = [row[0][0] for row in (result.top(p, 1) for p in result.probabilities)]
            classed = [a for a in answers if a != UNKNOWN]
            most = Counter(classed).most_common(1)
            rows[name] = {"windows": len(answers), "given_a_class": len(classed) / len(answers),
                          "most_given": most[0][0] if most else None,
                          "mean_top_probability": float(result.probabilities.max(axis=1).mean())}
            print(f"{name:32s} {rows[name]['given_a_class']:6.0%} of {len(answers)} windows given a class"
                  + (f" (mostly {most[0][0]})" if most else ""))
    total = sum(r["windows"] for r in rows.values())
    classed = sum(r["windows"] * r["given_a_class"] for r in rows.values())
    print(f"all: {classed / total:.1%} of {total} noise-only windows given a class "
          f"(model {model_dir.name}, `unknown` below {model.unknown_below:g})")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": model_dir.name, "unknown_below": model.unknown_below,
                                         "given_a_class": classed / total, "windows": total, "kinds": rows,
                                         "machine": platform.processor() or platform.machine()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
