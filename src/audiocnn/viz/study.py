"""Study charts: accuracy per recipe variant, clean and under each robustness condition."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audiocnn.viz.axes import figure, save


def save_variant_chart(names: list[str], series: list[tuple[str, list[dict[int, float]]]], out: Path,
                       reference: str) -> Path:
    """Bars of mean ± std accuracy per variant (dots: single folds), one bar per series (clean, conditions).

    `series` is [(condition label, [fold -> accuracy, one mapping per variant])]; the
    reference variant is outlined.
    """
    width = 0.8 / len(series)
    fig = figure(figsize=(max(6, (0.8 + 0.5 * (len(series) - 1)) * len(names) + 2), 4.5))
    ax = fig.subplots()
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    lows = []
    for j, (label, per_variant) in enumerate(series):
        x = np.arange(len(names)) + (j - (len(series) - 1) / 2) * width
        means = np.array([100 * np.mean(list(f.values())) if f else np.nan for f in per_variant])
        stds = np.array([100 * np.std(list(f.values()), ddof=1) if len(f) > 1 else 0 for f in per_variant])
        ax.bar(x, means, width * 0.95, yerr=stds, capsize=2, color=colours[j % len(colours)], label=label,
               edgecolor=["black" if n == reference else "none" for n in names], linewidth=1.2)
        for i, folds in enumerate(per_variant):
            ax.plot([x[i]] * len(folds), [100 * a for a in folds.values()], "k.", ms=2)
            if len(series) == 1 and folds:
                ax.text(x[i], means[i] + stds[i] + 0.5, f"{means[i]:.1f}", ha="center", fontsize=8)
        lows.append(np.nanmin(means - stds))
    ax.set_ylim(max(0, min(lows) - 10) if len(series) == 1 else 0, 100)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("test accuracy (%), mean ± std\n(dots: single folds)")
    fig.suptitle(f"variants vs {reference} (outlined)")
    if len(series) > 1:  # above the axes: below them it collides with the rotated variant names
        ax.legend(fontsize=8, ncols=len(series), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    for tick in ax.get_xticklabels():
        tick.set(rotation=30, ha="right")
    return save(fig, out, dpi=100)


