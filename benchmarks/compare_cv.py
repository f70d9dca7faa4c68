"""Is one cross-validated recipe better than another? Paired per-fold differences of two
`benchmarks/esc50_cv.py` results, with the 95% t-interval that `audiocnn study` uses.

Both runs use the same official folds, so each fold is a pair; the interval says whether the
difference is beyond fold-to-fold noise. Conditions other than clean accuracy are compared
where both results hold them per fold (`robustness_per_fold`, or the older `band4k_per_fold`).

    .venv/bin/python benchmarks/compare_cv.py benchmarks/results/esc50_cpu_v2_5fold.json \\
        benchmarks/results/esc50_cpu_multires_5fold.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from audiocnn.training.study import paired_difference


def per_fold(result: dict) -> dict[str, dict[int, float]]:
    """Condition -> fold number -> accuracy, from one esc50_cv.py result."""
    conditions = {"clean": {f["fold"]: f["accuracy"] for f in result["folds"]},
                  "macro_f1": {f["fold"]: f["macro_f1"] for f in result["folds"]}}
    for condition, folds in result.get("robustness_per_fold", {}).items():
        conditions.setdefault(condition, {int(k.removeprefix("fold")): v for k, v in folds.items()})
    if "band4k_per_fold" in result:
        conditions.setdefault("band4k", {int(k.removeprefix("fold")): v for k, v in result["band4k_per_fold"].items()})
    return conditions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path)
    parser.add_argument("candidate", type=Path)
    args = parser.parse_args()
    reference = per_fold(json.loads(args.reference.read_text()))
    candidate = per_fold(json.loads(args.candidate.read_text()))
    print(f"candidate {args.candidate.name} minus reference {args.reference.name}, paired by fold\n")
    print("| condition | folds | reference | candidate | Δ (95% CI) |\n|---|---:|---:|---:|---:|")
    for condition in [c for c in candidate if c in reference]:
        diff = paired_difference(candidate[condition], reference[condition])
        if not diff:
            continue
        shared = sorted(set(candidate[condition]) & set(reference[condition]))
        ref = sum(reference[condition][k] for k in shared) / len(shared)
        cand = sum(candidate[condition][k] for k in shared) / len(shared)
        print(f"| {condition} | {diff['n']} | {100 * ref:.1f} | {100 * cand:.1f} | "
              f"{100 * diff['mean']:+.1f} [{100 * diff['low']:+.1f}, {100 * diff['high']:+.1f}] |")


if __name__ == "__main__":
    main()
