"""The documentation is code: the public API's examples run.

The examples (doctests, numpydoc/Google style as librosa's) are run over exactly the modules of
the entry points the README names, so an example that stops matching the code fails here.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

#: The modules whose examples run, and whether they take more than about half a second (slow),
#: measured with the suite's imports done (timm, Lightning, FastAPI: its collection imports them).
DOCTESTED = {
    "audiocnn.inference.predictor": True,  # 0.5 s: loads the bundled model twice and builds its runtime
    "audiocnn.serve.service": False,  # 0.25 s: a ModelService over the bundled model classifies a bark
    "audiocnn.bundle": False,  # 0.2 s: loads the bundled model, saves and reloads a copy
    "audiocnn.training.cv": False,  # reads a recipe; the training calls are shown, not run
    "audiocnn.models.classifier": False,
    "audiocnn.datasets": False,  # a tiny folder dataset of tones
    "audiocnn.datasets.base": False,
}


@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.slow] if slow else [])
                                  for name, slow in DOCTESTED.items()])
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (printed above)"
