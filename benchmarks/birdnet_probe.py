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

Embeddings are kept in `--cache` (an .npz per set, keyed by the files' names and sizes), so
changing the head costs seconds.

    .venv/bin/python benchmarks/birdnet_probe.py --ood runs/ood --predictions benchmarks/results/ood \
        --json benchmarks/results/birdnet_probe.json
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--esc50", type=Path, default=REPO.parent / "shared" / "data" / "esc50")
    parser.add_argument("--ood", type=Path, help="the out-of-domain set (benchmarks/ood_set.py --out)")
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "birdnet-embeddings")
    parser.add_argument("--predictions", type=Path, help="folder for birdnet-probe.csv (per recording)")
    parser.add_argument("--json", type=Path, help="write the figures here")
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
    result["machine"] = {"cpu": platform.processor() or platform.machine(), "seconds": round(time.time() - started)}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
