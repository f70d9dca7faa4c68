"""Score models on the out-of-domain set (benchmarks/ood_set.py): how they do on real recordings
from outside ESC-50, and whether their confidence tells known sounds from the rest.

Every model classifies every recording as `audiocnn predict` does (windows, then the mean of
their probabilities). For the in-class recordings: top-1 and top-3 with bootstrap 95% intervals
(clips resampled), per class and per source package, and the expected calibration error (ECE,
15 bins of top-1 confidence). For telling known from unknown: the AUROC of the top-1 probability
between in-class recordings and recordings of none of the 50 (1.0 = always separable, 0.5 =
chance), and of two scores made for open-set detection: the largest logit and the log-sum-exp of
the logits (the negative "energy"), both of the mean logits over windows.

Each model's per-recording predictions are kept in `--predictions DIR/<name>.csv`, so two recipes
are compared paired by clip without running them again (and its probabilities and logits in
`<name>.npz`, reused while the bundle and the set are unchanged):

    .venv/bin/python benchmarks/ood_score.py --set runs/ood src/audiocnn/bundled/esc50-mobilenetv2 \\
        runs/esc50-cpu --predictions benchmarks/results/ood --json benchmarks/results/ood_scores.json
    .venv/bin/python benchmarks/ood_score.py --compare benchmarks/results/ood/A.csv benchmarks/results/ood/B.csv

A run folder (`cv` or a study variant) stands for its fold models: each is scored, and the
figures are given per fold model and as their mean. `--ensemble NAME` scores the given models'
mean probabilities instead, one ensemble per fold of the same fold's models (NAME-fold1, ...):

    .venv/bin/python benchmarks/ood_score.py --set runs/ood runs/A runs/B --ensemble A+B \
        --predictions benchmarks/results/ood
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from audiocnn import bundle
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import Predictor
from audiocnn.training.calibration import confidence_error

sys.path.insert(0, str(Path(__file__).parent))
from ood_set import read_sources  # noqa: E402 - a sibling benchmark script

BOOTSTRAP = 2000
TOP = 5  # labels kept per recording in the predictions CSV


def read_manifest(folder: Path) -> list[dict[str, str]]:
    """The set's recordings, each with its class mapping from `ood/sources.csv`: `exact`, `loose`
    (ox -> cow, applause -> clapping, ...; scored apart too) or empty for none-of-the-50."""
    loose = {(row["package"], row["member"]) for row in read_sources() if row["mapping"] == "loose"}
    with (folder / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["mapping"] = "" if row["class"] == "none" else (
            "loose" if (row["package"], row["member"]) in loose else "exact")
    return rows


@dataclass
class SetOutputs:
    """One model's (or ensemble's) view of the set: per recording, the clip-level probabilities and
    the mean logits over windows; the labels they index, and the `unknown` threshold (0: none)."""

    labels: list[str]
    probabilities: np.ndarray  # (recordings, classes)
    logits: np.ndarray  # (recordings, classes)
    threshold: float


def model_outputs(model_dir: Path, folder: Path, rows: list[dict[str, str]]) -> SetOutputs:
    """Every recording classified as `audiocnn predict` does (windows, then the mean)."""
    model = bundle.load(model_dir)
    predictor = Predictor(model, PredictOptions(runtime="torch"))
    probabilities, logits = [], []
    for row in tqdm(rows, desc=model_dir.parent.name + "/" + model_dir.name, unit="file", leave=False):
        prediction = predictor.predict(folder / row["file"])
        probabilities.append(prediction.summary)
        logits.append(prediction.logits.mean(axis=0))
    return SetOutputs(model.labels, np.array(probabilities), np.array(logits), model.unknown_below)


def saved_outputs(model_dir: Path, folder: Path, rows: list[dict[str, str]], saved: Path | None) -> SetOutputs:
    """`model_outputs`, kept in `saved` (an .npz) and reused while the bundle's files and the
    set's recordings are the same: an ensemble of models scored before costs no inference."""
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and "training" not in p.relative_to(model_dir).parts
                   and (p.name == "config.json" or p.suffix in {".safetensors", ".onnx"}))  # an ensemble's members too
    fingerprint = hashlib.sha256(b"".join(str(p.relative_to(model_dir)).encode() + hashlib.sha256(p.read_bytes()).digest()
                                          for p in files)
                                 + "\n".join(r["sha256"] for r in rows).encode()).hexdigest()
    if saved is not None and saved.is_file():
        with np.load(saved) as kept:
            if str(kept["fingerprint"]) == fingerprint:
                return SetOutputs(kept["labels"].tolist(), kept["probabilities"], kept["logits"], float(kept["threshold"]))
    outputs = model_outputs(model_dir, folder, rows)
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(saved, fingerprint=fingerprint, labels=np.array(outputs.labels),
                            probabilities=outputs.probabilities.astype(np.float32), logits=outputs.logits.astype(np.float32),
                            threshold=outputs.threshold)
    return outputs


def ensemble_outputs(members: list[SetOutputs]) -> SetOutputs:
    """The members' mean probabilities (the ensemble's prediction, as `training.distill` averages
    teachers) and mean logits; an ensemble has no calibrated threshold."""
    if any(member.labels != members[0].labels for member in members):
        raise SystemExit("the ensemble's models predict different classes")
    return SetOutputs(members[0].labels, np.mean([m.probabilities for m in members], axis=0),
                      np.mean([m.logits for m in members], axis=0), 0.0)


def prediction_rows(outputs: SetOutputs, rows: list[dict[str, str]]) -> list[dict[str, object]]:
    """One row per recording: its class, the top labels and probabilities, p(true class), and
    the open-set scores of the mean logits (the largest, and the log-sum-exp: "energy")."""
    out = []
    labels = outputs.labels
    for row, summary, logits in zip(rows, outputs.probabilities, outputs.logits):
        order = np.argsort(-summary, kind="stable")[:TOP]
        truth = labels.index(row["class"]) if row["class"] in labels else None
        out.append({"file": row["file"], "class": row["class"], "package": row["package"], "mapping": row["mapping"],
                    **{f"label_{k + 1}": labels[i] for k, i in enumerate(order)},
                    **{f"p_{k + 1}": f"{summary[i]:.5f}" for k, i in enumerate(order)},
                    "p_true": "" if truth is None else f"{summary[truth]:.5f}",
                    "max_logit": f"{logits.max():.4f}", "energy": f"{np.logaddexp.reduce(logits):.4f}"})
    return out


def bootstrap_interval(hits: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean of `hits` (0/1 per clip), clips resampled with replacement."""
    if not len(hits):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = hits[rng.integers(0, len(hits), size=(BOOTSTRAP, len(hits)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """P(score of a known clip > score of an unknown one), ties counted half (scikit-learn's ROC AUC)."""
    if not len(known) or not len(unknown):
        return float("nan")
    truth = np.concatenate([np.ones(len(known)), np.zeros(len(unknown))])
    return float(roc_auc_score(truth, np.concatenate([known, unknown])))


def abstention(predictions: list[dict[str, object]], threshold: float) -> dict[str, float]:
    """What `unknown below threshold` does: the share of none-of-the-50 recordings it catches, the
    share of in-class recordings still answered, and how many of those answers are right."""
    known = [p for p in predictions if p["class"] != "none"]
    unknown = [p for p in predictions if p["class"] == "none"]
    answered = [p for p in known if float(p["p_1"]) >= threshold]
    return {"threshold": threshold,
            "none_labelled_unknown": float(np.mean([float(p["p_1"]) < threshold for p in unknown])) if unknown else 0.0,
            "in_class_answered": len(answered) / len(known) if known else 0.0,
            "answered_right": float(np.mean([p["label_1"] == p["class"] for p in answered])) if answered else 0.0}


def coverage_curve(predictions: list[dict[str, object]]) -> tuple[np.ndarray, np.ndarray]:
    """In-class recordings answered most-confident first: (share answered, top-1 of those answered)."""
    known = sorted((p for p in predictions if p["class"] != "none"), key=lambda p: -float(p["p_1"]))
    hits = np.cumsum([p["label_1"] == p["class"] for p in known])
    answered = np.arange(1, len(known) + 1)
    return answered / len(known), hits / answered


def abstention_curve(predictions: list[dict[str, object]]) -> tuple[np.ndarray, np.ndarray]:
    """Every threshold on the top-1 probability: (share of in-class recordings answered, share of
    none-of-the-50 recordings labelled `unknown`), thresholds from high to low."""
    known = np.array([float(p["p_1"]) for p in predictions if p["class"] != "none"])
    unknown = np.array([float(p["p_1"]) for p in predictions if p["class"] == "none"])
    thresholds = np.concatenate([[np.inf], np.sort(np.concatenate([known, unknown]))[::-1], [-np.inf]])
    return (np.array([(known >= t).mean() for t in thresholds]), np.array([(unknown < t).mean() for t in thresholds]))


def save_coverage_plot(curves: dict[str, list[dict[str, object]]], path: Path) -> None:
    """Two panels: accuracy against coverage of the in-class recordings, and what an `unknown`
    threshold trades: in-class recordings answered against none-of-the-50 recordings caught."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(11.5, 4.4), layout="constrained")
    accuracy_axes, unknown_axes = fig.subplots(1, 2)
    for name, predictions in curves.items():
        coverage, accuracy = coverage_curve(predictions)
        accuracy_axes.plot(100 * coverage, 100 * accuracy, label=name)
        answered, caught = abstention_curve(predictions)
        unknown_axes.plot(100 * answered, 100 * caught, label=name)
    accuracy_axes.set(xlabel="in-class recordings answered (%), most confident first", ylabel="top-1 of those answered (%)",
                      title="Accuracy against coverage", xlim=(0, 100), ylim=(0, 100))
    unknown_axes.add_patch(Rectangle((60, 70), 40, 30, color="tab:green", alpha=0.12, label="issue 18's goal"))
    unknown_axes.set(xlabel="in-class recordings answered (%)", ylabel="none-of-the-50 recordings labelled unknown (%)",
                     title="What an unknown threshold trades", xlim=(0, 100), ylim=(0, 100))
    for axes in (accuracy_axes, unknown_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    fig.suptitle("Out-of-domain set")
    fig.savefig(path, dpi=110)


def summarise(predictions: list[dict[str, object]], threshold: float = 0.0) -> dict[str, object]:
    known = [p for p in predictions if p["class"] != "none"]
    unknown = [p for p in predictions if p["class"] == "none"]
    top1 = np.array([p["label_1"] == p["class"] for p in known], dtype=float)
    top3 = np.array([p["class"] in (p["label_1"], p["label_2"], p["label_3"]) for p in known], dtype=float)
    confidence = np.array([float(p["p_1"]) for p in known])
    per_class, per_package = defaultdict(list), defaultdict(list)
    for p, hit in zip(known, top1):
        per_class[p["class"]].append(hit)
        per_package[p["package"]].append(hit)
    exact = top1[[p.get("mapping", "exact") == "exact" for p in known]]
    return {
        "in_class": {"n": len(known), "top1": float(top1.mean()), "top1_ci95": bootstrap_interval(top1),
                     "top3": float(top3.mean()), "top3_ci95": bootstrap_interval(top3),
                     "ece": confidence_error(confidence, top1)},
        "in_class_exact_mapping": {"n": len(exact), "top1": float(exact.mean()), "top1_ci95": bootstrap_interval(exact)},
        "none_of_the_50": {"n": len(unknown),
                           **{f"auroc_{score}": auroc(np.array([float(p[column]) for p in known]),
                                                      np.array([float(p[column]) for p in unknown]))
                              for score, column in (("top1_probability", "p_1"), ("max_logit", "max_logit"),
                                                    ("energy", "energy"))},
                           "mean_top1_probability": float(np.mean([float(p["p_1"]) for p in unknown]))
                           if unknown else float("nan"),
                           "mean_top1_probability_in_class": float(confidence.mean())},
        "abstention": abstention(predictions, threshold),
        "per_class_top1": {c: {"n": len(h), "top1": float(np.mean(h))} for c, h in sorted(per_class.items())},
        "per_package_top1": {c: {"n": len(h), "top1": float(np.mean(h))} for c, h in sorted(per_package.items())},
    }


def models_of(path: Path) -> list[Path]:
    """A bundle is itself; a run folder stands for its fold models."""
    if (path / "config.json").is_file():
        return [path]
    folds = sorted(path.glob("fold*/model"))
    if not folds:
        raise SystemExit(f"{path}: neither a bundle nor a run folder with fold*/model")
    return folds


def compare(a: Path, b: Path) -> dict[str, object]:
    """Paired by clip: B's top-1 minus A's on the in-class recordings, with a bootstrap interval."""
    def hits(path: Path) -> dict[str, float]:
        with path.open(newline="") as handle:
            return {r["file"]: float(r["label_1"] == r["class"]) for r in csv.DictReader(handle) if r["class"] != "none"}

    first, second = hits(a), hits(b)
    common = sorted(first.keys() & second.keys())
    right_a, right_b = np.array([first[f] for f in common]), np.array([second[f] for f in common])
    return {"a": str(a), "b": str(b), "clips": len(common), "top1_a": float(right_a.mean()),
            "top1_b": float(right_b.mean()), **paired_by_clip(right_a, right_b)}


def paired_by_clip(right_a: np.ndarray, right_b: np.ndarray) -> dict[str, object]:
    """B's top-1 minus A's on the same clips (0/1 or bool per clip), its bootstrap interval, and the clips that moved."""
    difference = right_b.astype(float) - right_a.astype(float)
    return {"difference": float(difference.mean()), "difference_ci95": bootstrap_interval(difference),
            "b_right_a_wrong": int((difference > 0).sum()), "a_right_b_wrong": int((difference < 0).sum())}


#: Kinds of none-of-the-50 recordings, by the words of their `what` in the manifest (first match wins).
UNKNOWN_KINDS = (("speech and voices", re.compile(r"speech|voice|vocal|scream|cry|grunt|callout|crowd|shout|talk|laugh|sing")),
                 ("music and instruments", re.compile(r"music|instrument|horn signal|percussion|drum|bell|chime")),
                 ("everything else", re.compile(r"")))


def by_kind(path: Path, manifest: list[dict[str, str]]) -> dict[str, dict[str, float]]:
    """AUROC of the top-1 probability, in-class recordings against each kind of unknown one (a saved CSV)."""
    what = {row["file"]: row["what"] for row in manifest}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    known = np.array([float(r["p_1"]) for r in rows if r["class"] != "none"])
    kinds: dict[str, list[float]] = {name: [] for name, _ in UNKNOWN_KINDS}
    for r in rows:
        if r["class"] == "none":
            kinds[next(name for name, words in UNKNOWN_KINDS if words.search(what[r["file"]].lower()))].append(float(r["p_1"]))
    found: dict[str, dict[str, float]] = {
        name: {"recordings": len(scores), "auroc_top1_probability": auroc(known, np.array(scores))}
        for name, scores in kinds.items()}
    # The goal's trade at one point: the threshold that answers 60% of the in-class recordings.
    threshold = float(np.quantile(known, 0.4))
    right = np.array([r["label_1"] == r["class"] for r in rows if r["class"] != "none"])
    unknown = np.array([float(r["p_1"]) for r in rows if r["class"] == "none"])
    found["at_60_percent_answered"] = {"threshold": threshold, "none_labelled_unknown": float((unknown < threshold).mean()),
                                       "answered_right": float(right[known >= threshold].mean())}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", type=Path, help="bundles or run folders (fold*/model)")
    parser.add_argument("--set", type=Path, help="the folder ood_set.py built")
    parser.add_argument("--predictions", type=Path, help="keep each model's per-recording predictions here")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--plot", type=Path, help="draw accuracy against coverage of every model to this PNG")
    parser.add_argument("--ensemble", metavar="NAME",
                        help="score the models' mean probabilities as one model NAME (run folders: one per fold, "
                             "of the same fold's models)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A.csv", "B.csv"),
                        help="paired comparison of two saved prediction files")
    parser.add_argument("--by-kind", nargs="+", type=Path, metavar="CSV",
                        help="AUROC by kind of unknown sound (speech, music, the rest) of saved prediction files, and what the "
                             "threshold answering 60%% of in-class recordings trades; needs --set for the recordings' "
                             "descriptions; with --plot, their curves")
    args = parser.parse_args()
    if args.by_kind:
        if not args.set:
            parser.error("--by-kind needs --set")
        found = {str(path): by_kind(path, read_manifest(args.set)) for path in args.by_kind}
        print(json.dumps(found, indent=2))
        if args.json:
            args.json.write_text(json.dumps(found, indent=2) + "\n")
        if args.plot:  # the saved predictions are all the curves need
            save_coverage_plot({path.stem: list(csv.DictReader(path.open(newline=""))) for path in args.by_kind}, args.plot)
        return
    if args.compare:
        print(json.dumps(compare(*args.compare), indent=2))
        return
    if not args.set or not args.models:
        parser.error("give --set and at least one model (or --compare A B)")
    rows = read_manifest(args.set)
    record: dict[str, object] = {"set": str(args.set), "recordings": len(rows), "date": time.strftime("%Y-%m-%d"),
                                 "machine": f"{platform.machine()}, {os.cpu_count()} cores", "models": {}}
    curves = {}
    outputs: dict[str, dict[str, SetOutputs]] = {}  # run or bundle -> model name -> outputs
    for path in args.models:
        outputs[str(path)] = {}
        for model_dir in models_of(path):
            name = model_dir.name if model_dir == path else f"{path.name}-{model_dir.parent.name}"
            outputs[str(path)][name] = saved_outputs(model_dir, args.set, rows,
                                                     args.predictions / f"{name}.npz" if args.predictions else None)
    if args.ensemble:  # one ensemble per fold (the same fold's model of every run), or of all bundles
        members: dict[str, list[SetOutputs]] = defaultdict(list)
        for path in args.models:
            for name, out in outputs[str(path)].items():
                fold = name.rpartition("-")[2] if name.rpartition("-")[2].startswith("fold") else ""
                members[f"{args.ensemble}-{fold}" if fold else args.ensemble].append(out)
        partial = [name for name, group in members.items() if len(group) != len(args.models)]
        if partial:
            raise SystemExit(f"--ensemble: {', '.join(partial)} would not have a model from every run given")
        outputs = {args.ensemble: {name: ensemble_outputs(group) for name, group in members.items()}}
    for path, named in outputs.items():
        scores = {}
        for name, out in named.items():
            predictions, threshold = prediction_rows(out, rows), out.threshold
            curves[name] = predictions
            if args.predictions:
                args.predictions.mkdir(parents=True, exist_ok=True)
                with (args.predictions / f"{name}.csv").open("w", newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=list(predictions[0]))
                    writer.writeheader()
                    writer.writerows(predictions)
            scores[name] = summarise(predictions, threshold)
            figures = scores[name]
            print(f"{name}: in-class top-1 {100 * figures['in_class']['top1']:.1f}% "
                  f"[{100 * figures['in_class']['top1_ci95'][0]:.1f}, {100 * figures['in_class']['top1_ci95'][1]:.1f}], "
                  f"top-3 {100 * figures['in_class']['top3']:.1f}%, exact-mapping top-1 "
                  f"{100 * figures['in_class_exact_mapping']['top1']:.1f}%, ECE {figures['in_class']['ece']:.3f}, "
                  f"AUROC known vs none: top-1 probability {figures['none_of_the_50']['auroc_top1_probability']:.3f}, "
                  f"max logit {figures['none_of_the_50']['auroc_max_logit']:.3f}, "
                  f"energy {figures['none_of_the_50']['auroc_energy']:.3f}", flush=True)
            held = figures["abstention"]
            if threshold:
                print(f"  unknown below {threshold:.2f}: {100 * held['none_labelled_unknown']:.0f}% of none-of-the-50 "
                      f"caught, {100 * held['in_class_answered']:.0f}% of in-class answered, "
                      f"{100 * held['answered_right']:.0f}% of those right", flush=True)
        record["models"][path] = scores
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    if args.plot:
        save_coverage_plot(curves, args.plot)


if __name__ == "__main__":
    main()
