"""A run killed at any moment and run again ends exactly as if it had never been killed.

Real processes, real SIGKILLs (tests/kill_at.py): the CLI's `cv` is killed at six moments of a
3-epoch fold, rerun after each kill, and its results must be byte-identical to an
uninterrupted run of the same command in another folder (float32, deterministic mode, one thread).
Each run is a process of its own, forked from one that imported the CLI once: eight fresh imports
of torch and Lightning took longer than all the training.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audiocnn.config import load_recipe
from audiocnn.datasets import make_splits
from audiocnn.errors import AudiocnnWarning
from audiocnn.features import create_frontend
from audiocnn.training.cv import split_data
from audiocnn.training.fit import fit_split
from audiocnn.training.prepare import prepare
from conftest import REPO, SMOKE, TINY

KILL_AT = REPO / "tests" / "kill_at.py"
# 36 training clips of fold 1: 27 train (6 steps of 4 an epoch), 9 validation. SpecAugment and
# mixup on, best-val selection: every random draw and the best-epoch record must survive a kill.
RECIPE = [*TINY, "train.epochs=3", "train.mixup=0.2", "train.select=best-val", "train.deterministic=true",
          "train.threads=1"]
#: The moments, in the order one run meets them; each kill happens in a fresh rerun.
MOMENTS = [
    "before:*/cache/*.npy:1",  # the feature cache half written
    "step:9",  # mid-epoch: the 3rd of 6 steps of epoch 2
    "after:*/fold1/checkpoints/last.ckpt:2",  # just after the last epoch's checkpoint (the rerun resumed at epoch 2)
    "before:*/fold1/model/config.json:1",  # mid bundle save: weights written, config.json not yet
    "before:*/fold1/robustness.json:1",  # mid robustness: scored, not yet written
    "after:*/fold1/metrics.json:1",  # the fold marked finished, the summary not yet written
]
RESULTS = ["summary.json", "summary.md", "fold1/predictions.csv", "fold1/metrics.json", "fold1/robustness.json",
           "fold1/model/model.safetensors", "fold1/model/config.json"]


def _cv(moments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """kill_at.py's runs of `audiocnn cv`, one per moment, in that order (relative paths: the moment's folder)."""
    args = ["cv", str(SMOKE), "--data-root", "tones", "--folds", "1", "--no-progress", "--out", "run",
            "--cache-dir", "cache", *[a for item in RECIPE for a in ("--set", item)]]
    return subprocess.run([sys.executable, str(KILL_AT), *moments, "--", *args], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)


@pytest.mark.slow
def test_a_cv_run_killed_at_six_moments_resumes_to_identical_results(tones, tmp_path):
    for folder in ("uninterrupted", "killed"):  # the same data under the same relative path
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "tones").symlink_to(tones)
    # an uninterrupted run, then six runs killed one after another, then one run to the end
    moments = ["end@uninterrupted", *[f"{m}@killed" for m in MOMENTS], "end@killed"]
    runs = _cv(moments, tmp_path)
    output = runs.stdout
    assert runs.returncode == 0, output
    ends = re.findall(r"^kill_at: (.*): (-?\d+)$", output, re.M)
    assert [moment for moment, _ in ends] == moments, output
    assert ends[0][1] == "0", output
    for moment, status in ends[1:-1]:
        assert status == "-9", f"{moment}: not killed (exit {status}):\n{output}"
    assert ends[-1][1] == "0", output  # the rerun after the last kill finished
    assert "Traceback" not in output
    killed = tmp_path / "killed"
    for name in RESULTS:
        same = (tmp_path / "uninterrupted" / "run" / name).read_bytes() == (killed / "run" / name).read_bytes()
        assert same, f"{name} differs after the kills"
    attempts = sorted(p.name for p in (killed / "run" / "fold1" / "logs").iterdir())
    assert attempts == [f"version_{k}" for k in range(5)]  # every kill after the cache's came in a fit


@pytest.mark.slow
def test_a_damaged_last_checkpoint_is_set_aside_and_the_fold_trains_again(tones, tmp_path):
    # one thread: two spin against the other worker of `make test` (several times slower)
    recipe = load_recipe(SMOKE, [*TINY, "train.epochs=1"])
    prepared = prepare(recipe, tones, None, progress=False)
    fold1 = make_splits(prepared.dataset, val_fraction=recipe.data.val_fraction, seed=recipe.data.seed)[0]

    def fit():
        return fit_split(recipe, create_frontend(recipe.frontend), split_data(fold1, prepared),
                         len(prepared.dataset.classes), tmp_path, progress=False)

    first = fit()
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # cut short, as a full disk or a bad copy leaves it
    with pytest.warns(AudiocnnWarning, match=r"last\.ckpt: damaged .* trains again from its first epoch"):
        second = fit()
    assert (tmp_path / "last.ckpt.damaged").is_file()
    assert second.epochs_trained == 1 and (tmp_path / "logs" / "version_1" / "metrics.csv").is_file()
    for name, tensor in first.model.backbone.state_dict().items():  # trained again, from the same seed
        torch.testing.assert_close(tensor, second.model.backbone.state_dict()[name])
