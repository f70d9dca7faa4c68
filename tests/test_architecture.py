"""The house rules of ../shared/DESIGN.md, checked: layers only look down, importing changes
nothing, no module grows past 400 lines."""

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


@pytest.mark.slow
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


PROBE = r"""
import importlib, json, logging, pkgutil, sys, warnings
for name in sys.argv[1:]:  # third-party modules first: their own import-time settings are theirs
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
names = [n for n in names if not n.endswith("__main__")]  # a __main__ runs the command
for name in names:
    importlib.import_module(name)
after = state()
after["logging"] = {n: f for n, f in after["logging"].items() if n in before["logging"]}
print(json.dumps({"before": before, "after": after, "imported": len(names)}))
"""


@pytest.fixture(scope="module")
def probe() -> dict:
    """One fresh interpreter imports every module (state before and after)."""
    done = subprocess.run([sys.executable, "-c", PROBE, *_module_level_imports()],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_importing_every_module_changes_no_global_state(probe):
    """No warnings filter, logger filter, matplotlib backend or thread count is set by an import."""
    assert probe["imported"] >= 40
    assert probe["after"] == probe["before"]


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_is_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400
