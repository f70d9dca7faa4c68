"""A linear probe on frozen BirdNET V2.4 embeddings: ESC-50's 5 folds and the out-of-domain set (issue 31).

Is the audio-pretrained network the lever the ImageNet route lacks? Every recording is cut into
3 s windows every 1.5 s (48 kHz, band-limited to 8 kHz: ESC-50's 16 kHz clips hold no more),
embedded by BirdNET (`audiocnn.inference.embeddings`), and its windows' embeddings averaged. A
logistic regression on the standardised clip embeddings is then
- scored on ESC-50's official folds (train on four, test on the fifth, five times), and
- trained on all of ESC-50 and scored on the out-of-domain set (`benchmarks/ood_set.py`) with
  `ood_score.py`'s own scoring: in-class top-1/top-3 with bootstrap intervals, the AUROC of known
  against none-of-the-50, and a predictions CSV (`--predictions`) that `ood_score.py --compare`
  pairs by recording with the bundled model's.

With `--noise-floors`, the noise floors of `noise_floors.py` (made at 16 kHz, window by window)
are asked of the probe too, and of a probe given a 51st class, `background`, learnt from other
floors (another seed; and, to see what it does with noise it never heard, from white and brown
noise and hum only, tested on pink noise, recorder hiss and digital silence).

Embeddings are kept in `--cache` (an .npz per set, keyed by the files' names and sizes), so
changing the head costs seconds.

    .venv/bin/python benchmarks/birdnet_probe.py --ood runs/ood --predictions benchmarks/results/ood \
        --json benchmarks/results/birdnet_probe.json --noise-floors
    .venv/bin/python benchmarks/ood_score.py --compare benchmarks/results/ood/bundled.csv \
        benchmarks/results/ood/birdnet-probe.csv
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from audiocnn.datasets import esc50
from audiocnn.inference.embeddings import BirdNetEmbedder, embed_file

sys.path.insert(0, str(Path(__file__).parent))
from ood_score import SetOutputs, prediction_rows, read_manifest, summarise  # noqa: E402 - a sibling script

REPO = Path(__file__).resolve().parents[1]
HOP_SECONDS = 1.5
BANDWIDTH_HZ = 8_000
#: The probe's regularisation: sklearn's default strength on standardised features.
C = 1.0


def clip_embeddings(embedder: BirdNetEmbedder, paths: list[Path], cache: Path) -> np.ndarray:
    """(files, 1024): the mean of each file's window embeddings, kept in `cache` for the same files."""
    key = hashlib.sha256("\n".join(f"{p.name}:{p.stat().st_size}" for p in paths).encode()).hexdigest()
    if cache.is_file():
        with np.load(cache) as kept:
            if str(kept["key"]) == key:
                return kept["embeddings"]
    vectors = np.stack([embed_file(embedder, path, HOP_SECONDS).vectors.mean(axis=0)
                        for path in tqdm(paths, desc=cache.stem, unit="file")])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, key=key, embeddings=vectors)
    return vectors


def probe() -> object:
    """The head: a logistic regression on standardised embeddings."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000))


def _ensemble(probe_outputs: SetOutputs, saved: Path) -> SetOutputs:
    """The mean of the probe's probabilities and a bundle's saved ones (matched by label name); its
    logits are the log of that mean (what the open-set scores read)."""
    with np.load(saved) as kept:
        names, probabilities = kept["labels"].tolist(), kept["probabilities"]
    mean = (probe_outputs.probabilities + probabilities[:, [names.index(label) for label in probe_outputs.labels]]) / 2
    return SetOutputs(probe_outputs.labels, mean, np.log(mean + 1e-12), 0.0)


def _save(predictions: list[dict[str, object]], folder: Path | None, name: str) -> None:
    """Per-recording predictions as `folder/name.csv`, for `ood_score.py --compare`."""
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(predictions[0]))
        writer.writeheader()
        writer.writerows(predictions)


def _floor_windows(embedder: BirdNetEmbedder, seed: int, cache: Path) -> tuple[np.ndarray, list[str]]:
    """Window embeddings of noise_floors.py's recordings made with `seed` (16 kHz, as ESC-50), and their kinds."""
    import tempfile

    import soundfile as sf

    from noise_floors import floors

    if cache.is_file():
        with np.load(cache) as kept:
            return kept["embeddings"], kept["kinds"].tolist()
    made = floors(16_000, seed)
    vectors, kinds = [], []
    with tempfile.TemporaryDirectory() as folder:
        for name, samples in made.items():
            path = Path(folder) / "floor.wav"
            sf.write(path, samples, 16_000, subtype="FLOAT")
            windows = embed_file(embedder, path, HOP_SECONDS).vectors
            vectors.append(windows)
            kinds += [name] * len(windows)
    np.savez_compressed(cache, embeddings=np.concatenate(vectors), kinds=np.array(kinds))
    return np.concatenate(vectors), kinds


def _noise_floors(embedder: BirdNetEmbedder, x: np.ndarray, y: np.ndarray, folds: np.ndarray, labels: list[str],
                  args: argparse.Namespace) -> dict[str, object]:
    """The probe on noise-floor windows (share answered a class with p >= 0.5, and which), and a probe
    with a `background` class trained on other floors: the same, its ESC-50 folds and out of domain."""
    from collections import Counter

    test, test_kinds = _floor_windows(embedder, 0, args.cache / "floors-seed0.npz")
    train, train_kinds = _floor_windows(embedder, 1, args.cache / "floors-seed1.npz")
    plain = probe().fit(x, y)
    p = plain.predict_proba(test)
    answered = p.max(axis=1) >= 0.5
    out: dict[str, object] = {
        "windows": len(test),
        "plain_share_answered_p50": float(answered.mean()),
        "plain_most_answered": Counter(labels[i] for i in p.argmax(axis=1)[answered]).most_common(3),
    }
    background = len(labels)
    xb, yb = np.concatenate([x, train]), np.concatenate([y, np.full(len(train), background)])
    fb = np.concatenate([folds, np.zeros(len(train), int)])  # floors train every fold's head, never tested
    with_bg = probe().fit(xb, yb)
    out["background_share_of_floor_windows"] = float((with_bg.predict(test) == background).mean())
    # kinds never trained on: background learnt from white and brown noise and hum, tested on the rest
    seen = ("white", "brown", "mains")
    trained = np.array([kind.startswith(seen) for kind in train_kinds])
    unseen = np.array([not kind.startswith(seen) for kind in test_kinds])
    held_out = probe().fit(np.concatenate([x, train[trained]]),
                           np.concatenate([y, np.full(int(trained.sum()), background)]))
    out["background_share_of_unseen_kinds"] = float((held_out.predict(test[unseen]) == background).mean())
    out["unseen_kinds"] = sorted({kind for kind, u in zip(test_kinds, unseen) if u})
    per_fold = {}
    for fold in sorted(set(folds)):
        head = probe().fit(xb[fb != fold], yb[fb != fold])
        per_fold[int(fold)] = float((head.predict(x[folds == fold]) == y[folds == fold]).mean())
    out["background_esc50_folds"] = per_fold
    out["background_esc50_mean"] = float(np.mean(list(per_fold.values())))
    if args.ood is not None:
        rows = read_manifest(args.ood)
        ood = clip_embeddings(embedder, [args.ood / row["file"] for row in rows], args.cache / "ood.npz")
        proba = with_bg.predict_proba(ood)
        outputs = SetOutputs([*labels, "background"], proba, with_bg.decision_function(ood), 0.0)
        summary = summarise(prediction_rows(outputs, rows))
        out["background_ood_in_class_top1"] = summary["in_class"]["top1"]
        out["background_ood_in_class_top1_ci95"] = summary["in_class"]["top1_ci95"]
        none = [i for i, row in enumerate(rows) if row["class"] == "none"]
        out["background_share_of_none_of_the_50"] = float((proba[none].argmax(axis=1) == background).mean())
    print(f"noise floors: plain probe answers {out['plain_share_answered_p50']:.1%} of {len(test)} windows with p >= 0.5 "
          f"({out['plain_most_answered']}); with a background class: {out['background_share_of_floor_windows']:.1%} "
          f"background ({out['background_share_of_unseen_kinds']:.1%} of kinds it never saw), ESC-50 {out['background_esc50_mean']:.1%}, out of domain "
          f"{out.get('background_ood_in_class_top1', float('nan')):.1%}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--esc50", type=Path, default=REPO.parent / "shared" / "data" / "esc50")
    parser.add_argument("--ood", type=Path, help="the out-of-domain set (benchmarks/ood_set.py --out)")
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "birdnet-embeddings")
    parser.add_argument("--predictions", type=Path, help="folder for birdnet-probe.csv (per recording)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--noise-floors", action="store_true",
                        help="also: what the probe answers on noise floors (noise_floors.py's, seed 0), and a probe "
                        "trained with a 51st class `background` of other noise floors (seed 1)")
    parser.add_argument("--ensemble-with", type=Path, metavar="NPZ",
                        help="a bundle's outputs on the set (`ood_score.py --predictions DIR` keeps DIR/<model>.npz): "
                        "also score the mean of its probabilities and the probe's, as birdnet-probe+<model>")
    args = parser.parse_args()

    started = time.time()
    embedder = BirdNetEmbedder(bandwidth_hz=BANDWIDTH_HZ)
    data = esc50.load(args.esc50)
    clips = data.clips
    labels = sorted({clip.label for clip in clips})
    x = clip_embeddings(embedder, [clip.path for clip in clips], args.cache / "esc50.npz")
    y = np.array([labels.index(clip.label) for clip in clips])
    folds = np.array([clip.fold for clip in clips])
    per_fold = {}
    for fold in sorted(set(folds)):
        head = probe().fit(x[folds != fold], y[folds != fold])
        per_fold[int(fold)] = float((head.predict(x[folds == fold]) == y[folds == fold]).mean())
    result: dict[str, object] = {
        "esc50_folds": per_fold, "esc50_mean": float(np.mean(list(per_fold.values()))),
        "protocol": f"BirdNET V2.4 embeddings (3 s windows every {HOP_SECONDS} s, band-limited to {BANDWIDTH_HZ} Hz, "
                    f"mean over windows), StandardScaler + LogisticRegression(C={C})",
    }
    print(f"ESC-50 5-fold linear probe: {result['esc50_mean']:.1%} ({', '.join(f'{v:.1%}' for v in per_fold.values())})")
    if args.ood is not None:
        rows = read_manifest(args.ood)
        ood = clip_embeddings(embedder, [args.ood / row["file"] for row in rows], args.cache / "ood.npz")
        head = probe().fit(x, y)
        outputs = SetOutputs(labels, head.predict_proba(ood), head.decision_function(ood), 0.0)
        predictions = prediction_rows(outputs, rows)
        result["ood"] = summarise(predictions)
        known = result["ood"]["in_class"]
        print(f"out-of-domain in-class top-1 {known['top1']:.1%} {known['top1_ci95']}, top-3 {known['top3']:.1%}; "
              f"AUROC known vs none (top-1 p) {result['ood']['none_of_the_50']['auroc_top1_probability']:.3f}")
        _save(predictions, args.predictions, "birdnet-probe")
        if args.ensemble_with is not None:
            name = f"birdnet-probe+{args.ensemble_with.stem}"
            ensemble = prediction_rows(_ensemble(outputs, args.ensemble_with), rows)
            result["ood_ensemble"] = {"with": args.ensemble_with.stem, **summarise(ensemble)}
            known = result["ood_ensemble"]["in_class"]
            print(f"{name}: in-class top-1 {known['top1']:.1%} {known['top1_ci95']}, top-3 {known['top3']:.1%}")
            _save(ensemble, args.predictions, name)
    if args.noise_floors:
        result["noise_floors"] = _noise_floors(embedder, x, y, folds, labels, args)
    result["machine"] = {"cpu": platform.processor() or platform.machine(), "seconds": round(time.time() - started)}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
