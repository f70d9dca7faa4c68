"""The house rules of ../shared/DESIGN.md, checked: layers only look down, importing changes
nothing, moved modules still import (with a warning), no module grows past 400 lines."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

SRC = REPO / "src" / "audiocnn"


def test_layering_contracts_hold():
    """`lint-imports` reads the contracts in pyproject.toml: inference/explain never import training,
    nothing imports the CLI, only viz imports matplotlib, only training imports Lightning."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is installed by `make` (requirements.txt)"
    result = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _module_level_imports() -> list[str]:
    """Every third-party module our modules import at module level (what importing them pulls in)."""
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    return sorted(m for m in found if m.split(".")[0] not in {"audiocnn", "__future__"})


#: Each old module name and the public names it had: its alias must still give every one.
ALIASES = {
    "train": ["fit_split", "FitResult", "SplitData", "RandomCopy", "LitClassifier", "resolve_precision",
              "normalisation", "predict_images"],
    "cv": ["run_cv", "train_bundle", "prepare", "prepare_images", "split_data", "write_fold", "same_recipe",
           "recipe_dataset", "limited_dataset", "Prepared"],
    "cache": ["clip_images", "augmented_images", "cache_key", "clip_waves", "copy_seed"],
    "augment": ["mixup", "spec_augment", "waveform_transform", "augmented_waveform"],
    "robustness": ["CONDITIONS", "evaluate", "degrade", "recorded_like_noise", "save_fold", "scored", "missing"],
    "reports": ["write_summary", "save_confusion", "fold_robustness"],
    "study": ["load_study", "run_study", "collect", "paired_difference", "report_path"],
    "classifier": ["AudioClassifier"],
    "predict": ["Predictor", "FilePrediction", "window_count", "windows", "BLOCK_SECONDS"],
    "batch": ["classify_files", "BatchResult", "timeline_path"],
    "quantize": ["quantize", "read_int8", "int8_graph", "calibration_clips", "INT8_GRAPH", "INT8_INFO", "file_digest"],
    "prediction_formats": ["PredictionWriter", "FORMATS", "RAVEN_COLUMNS"],
    "denoise": ["reduce_noise", "DEFAULT_STRENGTH"],
    "explain_dataset": ["class_attributions", "ClassAttribution", "DATASET_STEPS", "write_dataset_explanation",
                        "save_grid", "save_class_figure"],
    "explain_plots": ["save_explanation", "overlay", "band_profile", "smooth_profile", "probability_bars"],
    "plots": ["feature_figure", "save_feature_figure", "draw_image", "frequency_ticks", "excerpt",
              "MAX_FIGURE_SECONDS", "format_hz", "plane_names"],
    "timeline": ["save_timeline", "SpectrogramCollector", "MAX_COLUMNS", "MAX_LANES"],
    "inference": ["for_inference", "fold_batchnorm", "OnnxBackbone", "ChannelsLast", "export_onnx", "RUNTIMES"],
    "models": ["create", "BACKBONES", "PACKAGED", "packaged_weights", "load_weights"],
    "explain": ["explain", "integrated_gradients", "grad_cam", "Attribution", "ig_maps", "grad_cam_maps",
                "baseline_images", "last_feature_layer", "window_waveform", "DEFAULT_STEPS", "METHODS", "BASELINES"],
    "features": ["create_frontend", "FRONTENDS", "Frontend", "power_to_db", "AMIN_POWER", "next_power_of_two",
                 "MelParams", "StftParams"],
    "cli": ["main", "build_parser", "parse_overrides", "expand_paths", "default_cache_dir", "EXIT_OK"],
}

PROBE = r"""
import importlib, json, logging, pkgutil, sys, warnings
aliases = json.loads(sys.argv[1])
for name in sys.argv[2:]:  # third-party modules first: their own import-time settings are theirs
    importlib.import_module(name)
import torch, matplotlib


def state():
    loggers = logging.root.manager.loggerDict.items()
    return {"filters": list(map(repr, warnings.filters)), "threads": torch.get_num_threads(),
            "backend": matplotlib.rcParams._get_backend_or_none(), "pyplot": "matplotlib.pyplot" in sys.modules,
            "logging": {n: [repr(f) for f in lg.filters] for n, lg in loggers if isinstance(lg, logging.Logger)}}


before = state()
import audiocnn
names = [m.name for m in pkgutil.walk_packages(audiocnn.__path__, "audiocnn.")]
# the aliases warn, by design (checked below), and a __main__ runs the command
names = [n for n in names if n.removeprefix("audiocnn.") not in aliases and not n.endswith("__main__")]
for name in names:
    importlib.import_module(name)
after = state()
after["logging"] = {n: f for n, f in after["logging"].items() if n in before["logging"]}
missing, warned = {}, []
for old, wanted in aliases.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(f"audiocnn.{old}")
        gone = [name for name in wanted if not hasattr(module, name)]
    if gone:
        missing[old] = gone
    warned += [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
print(json.dumps({"before": before, "after": after, "imported": len(names), "missing": missing, "warned": warned}))
"""


@pytest.fixture(scope="module")
def probe() -> dict:
    """One fresh interpreter imports every module (state before and after), then every old alias."""
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(ALIASES), *_module_level_imports()],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_importing_every_module_changes_no_global_state(probe):
    """No warnings filter, logger filter, matplotlib backend or thread count is set by an import."""
    assert probe["imported"] >= 40
    assert probe["after"] == probe["before"]


@pytest.mark.slow
def test_moved_modules_still_give_their_old_names_with_a_future_warning(probe):
    assert probe["missing"] == {}
    assert "audiocnn.predict has moved to audiocnn.inference.predictor and audiocnn.inference.windows; the old " \
           "name will be removed in the next release" in probe["warned"]
    assert any(w.startswith("audiocnn.inference.for_inference has moved") for w in probe["warned"])


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_is_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400
