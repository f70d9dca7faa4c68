"""Test-time augmentation: does averaging a clip's shifted and re-levelled versions pay for its cost?

Each window is scored as it is and as `VARIANTS` more versions (shifted ±0.25 s with zeros
filling the gap, and ±6 dB); the clip's prediction is the mean probability over windows and
versions. Measured on each fold model's own test fold of ESC-50 (paired by clip) and on the
out-of-domain set (in-class recordings, paired by clip), with the cost as the ratio of
inference times in the same run.

    .venv/bin/python benchmarks/tta.py runs/cpu-timm-optimizer --data-root ../shared/data/esc50 \\
        --ood runs/ood --json benchmarks/results/tta.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audiocnn import audio, bundle
from audiocnn.datasets import load_dataset
from audiocnn.datasets.images import clip_waves
from audiocnn.features.windows import windows
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import Predictor

sys.path.insert(0, str(Path(__file__).parent))
from ood_score import bootstrap_interval, read_manifest  # noqa: E402 - a sibling benchmark script


def shifted(seconds: float) -> Callable[[np.ndarray, int], np.ndarray]:
    def shift(wave: np.ndarray, rate: int) -> np.ndarray:
        n = int(round(abs(seconds) * rate))
        out = np.zeros_like(wave)
        if seconds > 0:
            out[n:] = wave[: len(wave) - n]
        else:
            out[: len(wave) - n] = wave[n:]
        return out
    return shift


def gained(db: float) -> Callable[[np.ndarray, int], np.ndarray]:
    return lambda wave, rate: wave * np.float32(10 ** (db / 20))


VARIANTS = {"shift +0.25 s": shifted(0.25), "shift -0.25 s": shifted(-0.25), "+6 dB": gained(6.0),
            "-6 dB": gained(-6.0)}


def window_probabilities(model: bundle.Bundle, windows_: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(plain, with TTA) clip probabilities of a recording's windows, and the seconds each took."""
    classifier, rate = model.model.eval(), model.sample_rate

    def scored(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return (classifier(torch.from_numpy(batch)) / model.temperature).softmax(-1).numpy()

    started = time.perf_counter()
    plain = scored(windows_).mean(axis=0)
    plain_seconds = time.perf_counter() - started
    started = time.perf_counter()
    versions = [windows_] + [np.stack([variant(w, rate) for w in windows_]) for variant in VARIANTS.values()]
    tta = scored(np.concatenate(versions)).mean(axis=0)
    return plain, tta, plain_seconds, time.perf_counter() - started


def recording_windows(path: Path, predictor: Predictor) -> np.ndarray:
    """The windows `audiocnn predict` scores (the predictor's window and hop)."""
    wave = audio.load(path, predictor.rate)
    return np.stack([w for _, w in windows([wave], predictor.window, predictor.hop)])


def paired(plain: list[bool], tta: list[bool]) -> dict[str, object]:
    a, b = np.array(plain, dtype=float), np.array(tta, dtype=float)
    return {"clips": len(a), "top1_plain": float(a.mean()), "top1_tta": float(b.mean()),
            "difference": float((b - a).mean()), "difference_ci95": bootstrap_interval(b - a)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="cv run folders (fold*/model)")
    parser.add_argument("--data-root", type=Path, required=True, help="ESC-50")
    parser.add_argument("--ood", type=Path, help="the out-of-domain set (benchmarks/ood_set.py)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    dataset = load_dataset("esc50", args.data_root)
    rows = [r for r in read_manifest(args.ood) if r["class"] != "none"] if args.ood else []
    record: dict[str, object] = {"variants": list(VARIANTS), "date": time.strftime("%Y-%m-%d"),
                                 "machine": f"{platform.machine()}, {os.cpu_count()} cores", "models": {}}
    for run in args.runs:
        for model_dir in sorted(run.glob("fold*/model")):
            model, fold = bundle.load(model_dir), int(model_dir.parent.name.removeprefix("fold"))
            predictor = Predictor(model, PredictOptions(runtime="torch"))
            clips = [c for c in dataset.clips if c.fold == fold]
            waves = clip_waves(clips, model.sample_rate, model.clip_seconds, progress=False)
            folds_plain, folds_tta, seconds = [], [], [0.0, 0.0]
            for clip, wave in tqdm(list(zip(clips, waves)), desc=f"{run.name}/{model_dir.parent.name}", leave=False):
                plain, tta, t_plain, t_tta = window_probabilities(model, wave[None])
                truth = model.labels.index(clip.label)
                folds_plain.append(int(plain.argmax()) == truth)
                folds_tta.append(int(tta.argmax()) == truth)
                seconds[0] += t_plain
                seconds[1] += t_tta
            ood_plain, ood_tta = [], []
            for row in tqdm(rows, desc="out-of-domain", leave=False):
                plain, tta, _, _ = window_probabilities(model, recording_windows(args.ood / row["file"], predictor))
                ood_plain.append(model.labels[int(plain.argmax())] == row["class"])
                ood_tta.append(model.labels[int(tta.argmax())] == row["class"])
            name = f"{run.name}-{model_dir.parent.name}"
            record["models"][name] = {"esc50_test_fold": paired(folds_plain, folds_tta),
                                      "out_of_domain": paired(ood_plain, ood_tta) if rows else None,
                                      "cost_ratio": seconds[1] / seconds[0]}
            print(name, json.dumps(record["models"][name]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
