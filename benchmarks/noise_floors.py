"""How often a model gives a class to a window that holds nothing but a noise floor (issue 31).

A field recording is mostly noise floor: the recorder's self-noise, room tone, a hum. A model
that hears a class in it fills a detection table with false events (an outside check found all
209 quiet windows of a 25-minute recording labelled `crickets`). This script writes noise-only
recordings and classifies them as `audiocnn predict` does (the model's windows, half a window
apart, its calibrated probabilities and `unknown` threshold), and reports, per kind and level,
the share of windows given a class (anything but `unknown`) and the class given most.

The noises are made here, from a seeded generator, so nothing is downloaded:
- white, pink (1/f) and brown (1/f²) noise at -30 to -90 dBFS (RMS);
- recorder self-noise: white noise through a gentle high shelf (hiss), at -70 and -85 dBFS;
- mains hum at 50 and 60 Hz with odd harmonics, at -40 and -60 dBFS, over -85 dBFS hiss;
- digital silence.

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

from audiocnn import bundle
from audiocnn.bundled import default_model
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import UNKNOWN, Predictor

SECONDS = 30.0
LEVELS_DBFS = (-30, -40, -50, -60, -70, -80, -90)


def coloured(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise: white, pink (power falling as 1/f) or brown (1/f²), shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    spectrum *= {"white": 1.0, "pink": f ** -0.5, "brown": f ** -1.0}[kind]
    noise = np.fft.irfft(spectrum, n)
    return noise / np.sqrt(np.mean(noise ** 2))


def at_level(signal: np.ndarray, dbfs: float) -> np.ndarray:
    """`signal` scaled to an RMS of `dbfs` (0 dBFS: a full-scale sine's RMS, 1/√2)."""
    return (signal / np.sqrt(np.mean(signal ** 2)) * 10 ** (dbfs / 20) / np.sqrt(2)).astype(np.float32)


def floors(rate: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Every noise floor of the module notes, `SECONDS` long at `rate`."""
    rng = np.random.default_rng(seed)
    n = int(SECONDS * rate)
    t = np.arange(n) / rate
    made: dict[str, np.ndarray] = {}
    for kind in ("white", "pink", "brown"):
        for level in LEVELS_DBFS:
            made[f"{kind} noise {level} dBFS"] = at_level(coloured(kind, n, rng), level)
    hiss = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * (1 + 3 * np.fft.rfftfreq(n, 1 / rate) / (rate / 2)), n)
    for level in (-70, -85):
        made[f"recorder self-noise {level} dBFS"] = at_level(hiss, level)
    for mains in (50, 60):
        hum = sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 3, 5, 7))
        for level in (-40, -60):
            made[f"mains hum {mains} Hz {level} dBFS"] = at_level(hum, level) + at_level(hiss, -85)
    made["digital silence"] = np.zeros(n, np.float32)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a bundle (default: the bundled model)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    model_dir = args.model or default_model()
    model = bundle.load(model_dir)
    predictor = Predictor(model, PredictOptions(runtime="torch"))
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, samples in floors(model.sample_rate).items():
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
