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
killed, and studies that share an OUT share the runs of identical variants, such as their
`base`), on the same splits. The report is OUT/<study name>.md, .csv, .json and .png.
Because folds are paired, a variant is compared with the base by its per-fold accuracy differences: their mean and a 95% t-interval (n − 1 degrees of freedom).
An interval that excludes 0 is a difference beyond fold-to-fold noise. Each fold's model is
also scored on its test clips 20 dB quieter and under recorded-like noise (`robustness`), with
the same paired comparison, because a choice that does not move clean ESC-50 accuracy may still
decide how a model copes with a user's recordings.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audiocnn.config import Recipe, apply_override, read_recipe_yaml, read_yaml_mapping, recipe_from_dict
from audiocnn.datasets import split_fold
from audiocnn.errors import ConfigError
from audiocnn.viz.study import save_variant_chart

SECTIONS = ("data", "frontend", "model", "train")


@dataclass
class Study:
    """A study file read: the base recipe and each variant's recipe and overrides."""

    path: Path
    base_recipe: Path
    variants: dict[str, Recipe]  # in file order; the first is the reference
    overrides: dict[str, dict[str, Any]]
    folds: list[int] | None = None

    @property
    def reference(self) -> str:
        """The first variant's name: the others are compared against it."""
        return next(iter(self.variants))


@dataclass
class VariantResult:
    """One variant's per-fold scores, training time, and its difference from the reference."""

    name: str
    overrides: dict[str, Any]
    accuracy: dict[int, float]  # fold -> accuracy
    macro_f1: dict[int, float]
    train_seconds: float
    difference: dict[str, float] = field(default_factory=dict)  # vs the reference: mean, low, high, n
    robustness: dict[str, dict[int, float]] = field(default_factory=dict)  # condition -> fold -> accuracy
    robustness_difference: dict[str, dict[str, float]] = field(default_factory=dict)  # condition -> as `difference`


def load_study(path: str | Path) -> Study:
    """Read and validate a study file; every variant's recipe is built (and checked) up front."""
    path = Path(path)
    raw = read_yaml_mapping(path, "study", "a study is a mapping with base and variants")
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
        if not isinstance(changes, dict) or not all(isinstance(key, str) for key in changes):
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


def check_run_folder(folder: Path, recipe: Recipe) -> None:
    """A variant's run folder must be empty or hold this recipe's runs (see `cv.same_recipe`)."""
    from audiocnn.training.cv import same_recipe

    saved = folder / "recipe.json"
    if saved.is_file() and not same_recipe(saved, recipe):
        raise ConfigError(f"{folder}: holds runs of another recipe than variant {folder.name} of this study "
                          f"({saved}); use another --out or rename the variant")


def report_path(study: Study, out: Path, suffix: str = ".md") -> Path:
    """The study's report file in `out`, named after the study file."""
    return (out / study.path.stem).with_suffix(suffix)


def run_study(study: Study, data_root: Path, out: Path, *, cache_dir: Path | None = None, progress: bool = True,
              folds: list[int] | None = None, train: bool = True, allow_incomplete: bool = False
              ) -> list[VariantResult]:
    """Cross-validate every variant (resuming finished folds), then write the comparison.

    With `train=False` nothing is trained: the report covers the folds finished so far.
    """
    from audiocnn.training.cv import run_cv

    out.mkdir(parents=True, exist_ok=True)
    chosen = folds or study.folds
    for name, recipe in study.variants.items():  # refuse a mismatch before hours of training, not after
        check_run_folder(out / name, recipe)
    for name, recipe in (study.variants.items() if train else ()):
        if progress:
            print(f"study: variant {name} ({_describe(study.overrides[name])})", flush=True)
        run_cv(recipe, data_root, out / name, folds=chosen, cache_dir=cache_dir, progress=progress,
               allow_incomplete=allow_incomplete)
    results = collect(study, out, chosen)
    write_report(study, results, out, data_root)
    return results


def collect(study: Study, out: Path, folds: list[int] | None = None) -> list[VariantResult]:
    """Per-fold figures of every variant from its run folder, with paired differences to the reference.

    Only `folds` count (default: all found), so a run folder shared with a study over other
    folds cannot mix them in. A robustness condition counts only when every fold scored it.
    """
    from audiocnn.training.reports import fold_seconds
    from audiocnn.training.robustness import scored

    results = []
    for name in study.variants:
        records = {split_fold(m): (p.parent, m) for p in (out / name).glob("fold*/metrics.json")
                   for m in [json.loads(p.read_text())]}
        fold = sorted(k for k in records if k is not None and (folds is None or k in folds))
        metrics = [records[k][1] for k in fold]
        by_fold = {k: scored(records[k][0]) for k in fold}
        robust = {condition: {k: by_fold[k][condition] for k in fold}
                  for condition in (by_fold[fold[0]] if fold else {})
                  if condition != "clean" and all(condition in f for f in by_fold.values())}
        results.append(VariantResult(name, study.overrides[name], dict(zip(fold, (m["accuracy"] for m in metrics))),
                                     dict(zip(fold, (m["macro_f1"] for m in metrics))),
                                     sum(fold_seconds(records[k][0] / "metrics.json") for k in fold),
                                     robustness=robust))
    reference = results[0]
    for result in results[1:]:
        result.difference = paired_difference(result.accuracy, reference.accuracy)
        result.robustness_difference = {c: paired_difference(a, reference.robustness.get(c, {}))
                                        for c, a in result.robustness.items()}
    return results


def paired_difference(variant: dict[int, float], reference: dict[int, float]) -> dict[str, float]:
    """Mean per-fold accuracy difference on the folds both have, with a 95% paired t-interval."""
    from scipy.stats import ttest_rel

    shared = sorted(set(variant) & set(reference))
    ours, theirs = np.array([variant[k] for k in shared]), np.array([reference[k] for k in shared])
    if len(shared) == 0:
        return {}
    mean = float((ours - theirs).mean())
    if len(shared) < 2:
        return {"mean": mean, "low": math.nan, "high": math.nan, "n": len(shared)}
    with warnings.catch_warnings():  # equal differences on every fold: scipy warns, the interval is exact
        warnings.simplefilter("ignore", RuntimeWarning)
        interval = ttest_rel(ours, theirs).confidence_interval(0.95)
    return {"mean": mean, "low": float(interval.low), "high": float(interval.high), "n": len(shared)}


def write_report(study: Study, results: list[VariantResult], out: Path, data_root: Path) -> None:
    """OUT/<study>.csv, .md (the table), .json and .png (accuracy with error bars)."""
    rows = [_row(r) for r in results]
    stem = report_path(study, out, "")
    with stem.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    stem.with_suffix(".json").write_text(json.dumps([r.__dict__ for r in results], indent=2, default=str) + "\n")
    from audiocnn.training.robustness import CONDITIONS

    conditions = [c for c in CONDITIONS if any(c in r.robustness for r in results)]
    lines = [f"# Study `{study.path.name}` (base recipe `{study.base_recipe.name}`)", "",
             f"Data: `{data_root}`. Accuracy is mean ± std over folds; Δ is the paired per-fold difference to "
             f"`{study.reference}` with its 95% t-interval.", "",
             f"| variant | changes | folds | accuracy | macro-F1 | Δ accuracy vs {study.reference} (95% CI) | train time |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r, row in zip(results, rows):
        lines.append(f"| {r.name} | {row['changes']} | {row['folds']} | {row['accuracy']} | {row['macro_f1']} | "
                     f"{row['difference']} | {r.train_seconds / 60:.0f} min |")
    if conditions:
        lines += ["", "The same test clips as a recorder might give them (`robustness`): mean accuracy over folds, "
                  f"and in brackets the paired difference to `{study.reference}` ± its 95% interval.", "",
                  "| variant | clean | " + " | ".join(CONDITIONS[c] for c in conditions) + " |",
                  "|---|---:|" + "---:|" * len(conditions)]
        for r, row in zip(results, rows):
            lines.append(f"| {r.name} | {row['accuracy'].split(' ±')[0]} | "
                         + " | ".join(row[CONDITIONS[c]] for c in conditions) + " |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    save_chart(results, stem.with_suffix(".png"), study.reference)


def save_chart(results: list[VariantResult], out: Path, reference: str) -> Path:
    """Accuracy per variant (mean ± std over folds, dots = folds); beside it, if scored, under each condition."""
    from audiocnn.training.robustness import CONDITIONS

    conditions = [c for c in CONDITIONS if any(c in r.robustness for r in results)]
    series = [("clean", [r.accuracy for r in results])] + [(CONDITIONS[c], [r.robustness.get(c, {}) for r in results])
                                                          for c in conditions]
    return save_variant_chart([r.name for r in results], series, out, reference)


def _row(result: VariantResult) -> dict[str, str]:
    from audiocnn.training.robustness import CONDITIONS

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
            "macro_f1": f"{f1.mean():.3f}" if len(f1) else "–", "difference": difference,
            **{CONDITIONS[c]: _robust_cell(result, c) for c in CONDITIONS}}


def _robust_cell(result: VariantResult, condition: str) -> str:
    """Mean accuracy under one condition, with the paired difference to the reference ± its 95% half-width."""
    folds = result.robustness.get(condition, {})
    if not folds:
        return "–"
    cell = f"{100 * np.mean(list(folds.values())):.1f}%"
    d = result.robustness_difference.get(condition)
    if d and not math.isnan(d["low"]):
        cell += f" ({100 * d['mean']:+.1f} ± {100 * (d['high'] - d['mean']):.1f})"
    return cell


def _describe(overrides: dict[str, Any]) -> str:
    if not overrides:
        return "the base recipe"
    return ", ".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in overrides.items())
