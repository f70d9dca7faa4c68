"""The documentation is code: the public API's examples run, and every public name says what it is for.

The examples (doctests, numpydoc/Google style as librosa's) are run over exactly the modules of
the entry points the README names, so an example that stops matching the code fails here.
"""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import pytest

from conftest import REPO

SRC = REPO / "src" / "audiocnn"

#: The modules whose examples run, and whether they take more than about 0.15 s (slow),
#: measured with the suite's imports done (timm, Lightning, FastAPI: its collection imports them).
DOCTESTED = {
    "audiocnn.inference.predictor": True,  # 0.5 s: loads the bundled model twice and builds its runtime
    "audiocnn.serve.service": True,  # 0.25 s: a ModelService over the bundled model classifies a bark
    "audiocnn.bundle": True,  # 0.2 s: loads the bundled model, saves and reloads a copy
    "audiocnn.training.cv": False,  # reads a recipe; the training calls are shown, not run
    "audiocnn.models.classifier": False,
    "audiocnn.datasets": False,  # a tiny folder dataset of tones
    "audiocnn.datasets.base": False,
    "audiocnn.inference.options": False,  # an option out of range, named by its field
    "audiocnn.errors": False,
}


@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.slow] if slow else [])
                                  for name, slow in DOCTESTED.items()])
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (printed above)"


def _undocumented(path: Path) -> list[str]:
    """`relative/path.py: Name` or `Class.method` of each public definition without a docstring
    (module level, and the methods of public classes; dunder methods and property setters aside)."""
    def public(node: ast.AST) -> bool:
        return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and not node.name.startswith("_")

    def setter(node: ast.AST) -> bool:
        return any(isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter") for d in node.decorator_list)

    where = path.relative_to(SRC).as_posix()
    found = []
    for node in filter(public, ast.parse(path.read_text(encoding="utf-8")).body):
        if ast.get_docstring(node) is None:
            found.append(f"{where}: {node.name}")
        if isinstance(node, ast.ClassDef):
            found += [f"{where}: {node.name}.{sub.name}" for sub in filter(public, node.body)
                      if not isinstance(sub, ast.ClassDef) and not setter(sub) and ast.get_docstring(sub) is None]
    return found


@pytest.mark.slow
def test_every_public_name_has_a_docstring():
    missing = [name for path in sorted(SRC.rglob("*.py")) for name in _undocumented(path)]
    assert not missing, "public names without a docstring (say what each is for):\n" + "\n".join(sorted(missing))
