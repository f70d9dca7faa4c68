"""Ensembles as a bundle kind (issue 31): members averaged in calibrated probability, through the
library, the command line and the server, and refused in one line where one model is needed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from starlette.testclient import TestClient

from audiocnn import bundle
from audiocnn.bundled import default_model
from audiocnn.errors import BundleError
from audiocnn.inference.ensembles import make_ensemble
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import Predictor
from conftest import REPO, TONE_HZ, TONE_LABELS, tone_clip, uncalibrated_copy

pytestmark = pytest.mark.slow  # every test here uses the trained tone model

THUNDER = REPO / "examples" / "thunderstorm-thunder.flac"  # 10 s: ten 1 s windows for the tone models


@pytest.fixture(scope="module")
def members(tone_bundle, tmp_path_factory) -> list[Path]:
    """The shared tone model, and a copy of it without calibration: two members whose probabilities differ."""
    assert bundle.load(tone_bundle).temperature != 1.0  # else the two members would be the same model
    return [tone_bundle, uncalibrated_copy(tone_bundle, tmp_path_factory.mktemp("members") / "raw")]


@pytest.fixture(scope="module")
def ensemble(members, tmp_path_factory) -> Path:
    return make_ensemble(members, tmp_path_factory.mktemp("ensemble") / "both")


def test_an_ensemble_answers_with_its_members_mean_calibrated_probability(members, ensemble, tmp_path):
    both = tmp_path / "both-tones.wav"  # both tones at once: the members are unsure, each in its own way
    rng = np.random.default_rng(3)
    sf.write(both, tone_clip(TONE_HZ["low"], 4.0, rng) + tone_clip(TONE_HZ["high"], 4.0, rng), 16_000)
    options = PredictOptions(runtime="torch", hop=1.0)
    alone = [Predictor(bundle.load(m), options).predict(both).probabilities for m in members]
    together = bundle.load(ensemble)
    result = Predictor(together, options).predict(both)
    assert together.labels == list(TONE_LABELS) and len(together.members) == 2 and not together.hears_images
    np.testing.assert_allclose(result.probabilities, (alone[0] + alone[1]) / 2, atol=1e-5)
    assert np.abs(alone[0] - alone[1]).max() > 0.01  # the members differ, so the mean is a real test
    assert sorted(p.name for p in ensemble.iterdir()) == ["MODEL_CARD.md", "config.json", "members"]
    assert "Every member's licence" in (ensemble / "MODEL_CARD.md").read_text()


def test_members_that_cannot_be_averaged_are_refused_before_anything_is_written(members, tmp_path):
    out = tmp_path / "ensemble"
    with pytest.raises(BundleError, match="2 to 16 members"):
        make_ensemble(members[:1], out)
    with pytest.raises(BundleError, match="names other classes"):
        make_ensemble([members[0], default_model()], out)
    assert not out.exists()
    made = make_ensemble(members, out)
    with pytest.raises(BundleError, match="never written over"):
        make_ensemble(members, made)
    with pytest.raises(BundleError, match="single models, not ensembles"):
        make_ensemble([made, members[0]], tmp_path / "nested")


def test_a_member_outside_the_ensemble_folder_is_not_read(ensemble, tmp_path):
    planted = Path(shutil.copytree(ensemble, tmp_path / "planted"))
    config = json.loads((planted / "config.json").read_text())
    config["members"][1] = "members/../../elsewhere"
    (planted / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match=r"members\.1"):
        bundle.load(planted)


def test_the_command_line_makes_calibrates_and_predicts_with_an_ensemble(members, tones, cli, tmp_path):
    out = tmp_path / "ensemble"
    made = cli("ensemble", *members, "--out", out, "--data-root", tones, "--cache-dir", tmp_path / "cache",
               "--no-progress")
    assert made.code == 0, made.err
    assert f"{out}: an ensemble of 2 models" in made.out and "temperature" in made.out
    assert "fitted_on" in json.loads((out / "config.json").read_text())["calibration"]
    answer = cli("predict", THUNDER, "--model", out, "--format", "json", "--runtime", "torch", "--no-progress")
    assert answer.code == 0, answer.err
    assert json.loads(answer.out)["files"][0]["summary"][0]["label"] in TONE_LABELS
    for command in (["export", "--model", out, "--out", tmp_path / "e.onnx"],
                    ["explain", THUNDER, "--model", out, "--out", tmp_path / "e.png"],
                    ["embed", THUNDER, "--model", out, "--out", tmp_path / "e.parquet"]):
        refused = cli(*command)
        assert refused.code == 1 and refused.err.count("\n") == 1, refused.err
        assert "ensemble" in refused.err and "member" in refused.err


def test_a_server_serves_an_ensemble(ensemble):
    from audiocnn.serve import ServeSettings, create_app

    with TestClient(create_app(ServeSettings(model=ensemble, runtime="torch"))) as client:
        files = [("file", (THUNDER.name, THUNDER.read_bytes(), "application/octet-stream"))]
        answer = client.post("/v1/predict", files=files)
        assert answer.status_code == 200, answer.text
        assert answer.json()["files"][0]["summary"][0]["label"] in TONE_LABELS
        assert client.get("/v1/model").status_code == 200
        refused = client.post("/v1/explain", files=files)
        assert refused.status_code == 422 and "ensemble" in refused.json()["error"]
