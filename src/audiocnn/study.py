"""A study: variants of one base recipe, each cross-validated on the same folds, compared fairly.

A study file names a base recipe and its variants, each a set of `section.key: value`
overrides (a whole section may be replaced by giving it as a mapping, e.g. `frontend:
{kind: logspec}`):

    base: ../recipes/cpu.yaml          # relative to the study file
    folds: [1, 2, 3, 4, 5]             # optional: default all
    variants:
      base: {}                         # the reference every other variant is compared with
      no-mixup: {train.mixup: 0}
      logspec: {frontend: {kind: logspec, hop_ms: 20}}

Every variant runs through `run_cv` into OUT/<variant>/ (so a study resumes where it was
killed), on the same splits. Because folds are paired, a variant is compared with the base by
its per-fold accuracy differences: their mean and a 95% t-interval (n − 1 degrees of freedom).
An interval that excludes 0 is a difference beyond fold-to-fold noise.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from audiocnn.config import Recipe, apply_override, read_recipe_yaml, recipe_from_dict
from audiocnn.errors import ConfigError

SECTIONS = ("data", "frontend", "model", "train")


@dataclass
class Study:
    path: Path
    base_recipe: Path
    variants: dict[str, Recipe]  # in file order; the first is the reference
    overrides: dict[str, dict[str, Any]]
    folds: list[int] | None = None

    @property
    def reference(self) -> str:
        return next(iter(self.variants))


@dataclass
class VariantResult:
    name: str
    overrides: dict[str, Any]
    accuracy: dict[int, float]  # fold -> accuracy
    macro_f1: dict[int, float]
    train_seconds: float
    difference: dict[str, float] = field(default_factory=dict)  # vs the reference: mean, low, high, n


def load_study(path: str | Path) -> Study:
    """Read and validate a study file; every variant's recipe is built (and checked) up front."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: study file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study is a mapping with base and variants")
    unknown = sorted(set(raw) - {"base", "folds", "variants"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (known: base, folds, variants)")
    if "base" not in raw or not isinstance(raw.get("variants"), dict) or not raw["variants"]:
        raise ConfigError(f"{path}: needs `base: RECIPE.yaml` and a non-empty `variants:` mapping")
    base = (path.parent / str(raw["base"])).resolve()
    folds = raw.get("folds")
    if folds is not None and (not isinstance(folds, list) or not all(isinstance(k, int) for k in folds)):
        raise ConfigError(f"{path}: folds must be a list of fold numbers")
    variants: dict[str, Recipe] = {}
    overrides: dict[str, dict[str, Any]] = {}
    for name, changes in raw["variants"].items():
        name = str(name)
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ConfigError(f"{path}: variant name {name!r} must be letters, digits, '-', '_' or '.' (it names a folder)")
        changes = changes or {}
        if not isinstance(changes, dict):
            raise ConfigError(f"{path}: variant {name}: expected a mapping of section.key: value")
        variants[name] = variant_recipe(base, changes, f"{path}: variant {name}")
        overrides[name] = changes
    return Study(path, base, variants, overrides, folds)


def variant_recipe(base: Path, changes: dict[str, Any], where: str) -> Recipe:
    """The base recipe with a variant's changes: dotted keys are set, bare section names replaced."""
    raw = read_recipe_yaml(base)
    for key, value in changes.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key} replaces the whole section, so it must be a mapping")
            raw[key] = value
        else:
            apply_override(raw, key, value, f"{where}: {key}")
    return recipe_from_dict(raw, where)


def run_study(study: Study, data_root: Path, out: Path, *, cache_dir: Path | None = None, progress: bool = True,
              folds: list[int] | None = None) -> list[VariantResult]:
    """Cross-validate every variant (resuming finished folds), then write the comparison."""
    from audiocnn.cv import run_cv

    out.mkdir(parents=True, exist_ok=True)
    chosen = folds or study.folds
    for name, recipe in study.variants.items():
        if progress:
            print(f"study: variant {name} ({_describe(study.overrides[name])})", flush=True)
        run_cv(recipe, data_root, out / name, folds=chosen, cache_dir=cache_dir, progress=progress)
    results = collect(study, out)
    write_report(study, results, out, data_root)
    return results


def collect(study: Study, out: Path) -> list[VariantResult]:
    """Per-fold figures of every variant from its run folder, with paired differences to the reference."""
    results = []
    for name in study.variants:
        metrics = [json.loads(p.read_text()) for p in sorted((out / name).glob("fold*/metrics.json"))]
        fold = [int(m["split"].removeprefix("fold")) for m in metrics]
        results.append(VariantResult(name, study.overrides[name], dict(zip(fold, (m["accuracy"] for m in metrics))),
                                     dict(zip(fold, (m["macro_f1"] for m in metrics))),
                                     sum(m.get("train_seconds", 0.0) for m in metrics)))
    reference = results[0]
    for result in results[1:]:
        result.difference = paired_difference(result.accuracy, reference.accuracy)
    return results


def paired_difference(variant: dict[int, float], reference: dict[int, float]) -> dict[str, float]:
    """Mean per-fold accuracy difference on the folds both have, with a 95% t-interval."""
    from scipy.stats import t

    shared = sorted(set(variant) & set(reference))
    diffs = np.array([variant[k] - reference[k] for k in shared])
    if len(diffs) == 0:
        return {}
    mean = float(diffs.mean())
    if len(diffs) < 2:
        return {"mean": mean, "low": math.nan, "high": math.nan, "n": len(diffs)}
    half = float(t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / math.sqrt(len(diffs)))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(diffs)}


def write_report(study: Study, results: list[VariantResult], out: Path, data_root: Path) -> None:
    """study.csv, study.md (the table) and study.png (accuracy with error bars)."""
    rows = [_row(r) for r in results]
    with (out / "study.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "study.json").write_text(json.dumps([r.__dict__ for r in results], indent=2, default=str) + "\n")
    lines = [f"# Study `{study.path.name}` (base recipe `{study.base_recipe.name}`)", "",
             f"Data: `{data_root}`. Accuracy is mean ± std over folds; Δ is the paired per-fold difference to "
             f"`{study.reference}` with its 95% t-interval.", "",
             "| variant | changes | folds | accuracy | macro-F1 | Δ accuracy vs base (95% CI) | train time |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r, row in zip(results, rows):
        lines.append(f"| {r.name} | {row['changes']} | {row['folds']} | {row['accuracy']} | {row['macro_f1']} | "
                     f"{row['difference']} | {r.train_seconds / 60:.0f} min |")
    (out / "study.md").write_text("\n".join(lines) + "\n")
    save_chart(results, out / "study.png", study.reference)


def save_chart(results: list[VariantResult], out: Path, reference: str) -> Path:
    from audiocnn.plots import plt

    names = [r.name for r in results]
    means = [100 * np.mean(list(r.accuracy.values())) for r in results]
    stds = [100 * np.std(list(r.accuracy.values()), ddof=1) if len(r.accuracy) > 1 else 0 for r in results]
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names) + 2), 4.5), constrained_layout=True)
    colours = ["tab:gray" if n == reference else "tab:blue" for n in names]
    ax.bar(names, means, yerr=stds, capsize=4, color=colours)
    for i, result in enumerate(results):
        ax.text(i, means[i] + stds[i] + 0.5, f"{means[i]:.1f}", ha="center", fontsize=8)
        for fold_accuracy in result.accuracy.values():
            ax.plot(i, 100 * fold_accuracy, "k.", ms=3)
    low = max(0, min(means) - max(stds) - 10)
    ax.set_ylim(low, min(100, max(means) + max(stds) + 5))
    ax.set_ylabel("test accuracy (%): mean ± std over folds, dots = folds")
    ax.set_title(f"variants vs {reference} (grey)")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _row(result: VariantResult) -> dict[str, str]:
    acc = np.array(list(result.accuracy.values()))
    f1 = np.array(list(result.macro_f1.values()))
    spread = f" ± {100 * acc.std(ddof=1):.1f}" if len(acc) > 1 else ""
    d = result.difference
    if not d:
        difference = "–"
    elif math.isnan(d["low"]):
        difference = f"{100 * d['mean']:+.1f}"
    else:
        difference = f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
    return {"variant": result.name, "changes": _describe(result.overrides), "folds": str(len(acc)),
            "accuracy": f"{100 * acc.mean():.1f}%{spread}" if len(acc) else "–",
            "macro_f1": f"{f1.mean():.3f}" if len(f1) else "–", "difference": difference}


def _describe(overrides: dict[str, Any]) -> str:
    if not overrides:
        return "the base recipe"
    return ", ".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in overrides.items())
