"""Which of the model's labels a result shows (`--labels-include`, `--labels-exclude`): a site's species
list, or the classes that cannot occur there, as BirdNET-Analyzer's species lists do.

The rest are hidden from every table and document: a window lists only the shown labels, and the
`scores` format has columns for them only. Their probabilities keep the values the model gave (the
hidden labels' share is simply not shown) unless `renormalise` asks for the shown ones to add up to
one in each window. `unknown` is then judged on the shown labels: a window whose likeliest shown
label is below the threshold is `unknown`, so a recording of the hidden classes does not pass as the
nearest shown one.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from audiocnn.errors import OptionError
from audiocnn.inference.predictor import FilePrediction


def parsed_labels(text: str | None) -> list[str] | None:
    """Label names from a comma-separated list or a text of one per line (`#` starts a comment)."""
    if text is None:
        return None
    names = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        names += [name.strip() for name in line.split(",") if name.strip()]
    return names


def shown_labels(labels: list[str], include: str | None, exclude: str | None) -> list[int] | None:
    """The indices of `labels` a result shows (None: all of them); an `OptionError` naming the option
    for a name the model does not have, or when nothing would be left."""
    wanted, unwanted = parsed_labels(include), parsed_labels(exclude)
    if wanted is None and unwanted is None:
        return None
    for field, names in (("labels_include", wanted), ("labels_exclude", unwanted)):
        unknown = [name for name in names or [] if name not in labels]
        if unknown:
            raise OptionError(field, f"not labels of this model: {', '.join(map(repr, unknown[:5]))}"
                              f"{' and more' if len(unknown) > 5 else ''} (it has {len(labels)}: "
                              f"{', '.join(labels[:8])}{', ...' if len(labels) > 8 else ''})")
    keep = [i for i, label in enumerate(labels) if (wanted is None or label in wanted) and label not in (unwanted or [])]
    if not keep:
        raise OptionError("labels_include" if wanted else "labels_exclude", "leaves no label to show")
    return keep


def restricted(prediction: FilePrediction, keep: list[int] | None, renormalise: bool = False) -> FilePrediction:
    """`prediction` with only the labels `keep` (None: unchanged), their probabilities scaled to add up to
    one per window when `renormalise`."""
    if keep is None:
        return prediction
    probabilities = prediction.probabilities[:, keep]
    if renormalise:
        probabilities = probabilities / np.maximum(probabilities.sum(axis=1, keepdims=True), 1e-12)
    return replace(prediction, labels=[prediction.labels[i] for i in keep], probabilities=probabilities,
                   logits=None if prediction.logits is None else prediction.logits[:, keep])
