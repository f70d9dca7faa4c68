"""Do a model's per-class band profiles sit where each class's sound is? Numbers for docs/explain-esc50.md.

Reads the `attributions.npz` that `audiocnn explain-dataset` writes and compares, per class,
the smoothed band profile (attribution summed over time, as drawn in the grid) with where
the class is louder than the average clip of the fold (its mean spectrum minus the mean over
all classes). The IG baseline is a flat image at the training mean, so evidence is expected
where a class stands out from the average sound, not where it is loudest in absolute terms:
nearly every sound is loudest in the lowest bands.

    .venv/bin/python benchmarks/explain_profiles.py runs/explain-fold1 --model runs/study-esc50/base/fold1/model
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from audiocnn import bundle
from audiocnn.viz.explanations import smooth_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("explained", type=Path, help="an explain-dataset output folder")
    parser.add_argument("--model", type=Path, required=True, help="the bundle it explained (for row frequencies)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = np.load(args.explained / "attributions.npz")
    rows = np.asarray(bundle.load(args.model).model.frontend.row_frequencies())
    average = data["spectrogram"].mean(axis=(0, 2))
    classes = []
    for label, attribution, spectrogram in zip(data["labels"], data["attribution"], data["spectrogram"]):
        profile = smooth_profile(attribution.sum(axis=1))
        stands_out = spectrogram.mean(axis=1) - average
        classes.append({"label": str(label), "correlation": float(np.corrcoef(profile, stands_out)[0, 1]),
                        "peak_attribution_hz": float(rows[int(profile.argmax())]),
                        "most_above_average_hz": float(rows[int(stands_out.argmax())])})
    r = np.array([c["correlation"] for c in classes])
    summary = {"classes": len(classes), "median_correlation": float(np.median(r)), "positive": int((r > 0).sum()),
               "above_0.5": int((r > 0.5).sum()), "per_class": sorted(classes, key=lambda c: -c["correlation"])}
    print(f"{summary['positive']} of {len(classes)} classes have a band profile that rises with where the class "
          f"is louder than average (median correlation {summary['median_correlation']:.2f}; "
          f"{summary['above_0.5']} above 0.5)")
    for c in summary["per_class"]:
        print(f"  {c['label']:18s} r = {c['correlation']:+.2f}   evidence peaks at {c['peak_attribution_hz']:5.0f} Hz, "
              f"class stands out most at {c['most_above_average_hz']:5.0f} Hz")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
