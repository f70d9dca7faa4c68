"""Reviews (issue 32): review queues over detections, and reviews saved on the server, heard,
judged, exported as the `annotations` dataset and kept across restarts.

The queues on hand-made detections; the API on the bundled model through Starlette's TestClient,
its reviews in a temporary folder; the export read back by the annotations dataset itself.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import pytest
import soundfile as sf
from starlette.testclient import TestClient

from audiocnn.datasets.annotated import find_selections
from audiocnn.inference.detections import Detection
from audiocnn.inference.review_queue import MAX_QUEUE, Candidate, review_queue
from audiocnn.serve import ServeSettings, create_app
from audiocnn.serve.reviews import BrokenReview, ReviewStore
from test_serve import EXAMPLES, files


def _found(*rows: tuple[int, str, float]) -> list[Candidate]:
    """(recording, label, confidence) rows as candidates, each a second after the last."""
    return [Candidate(r, Detection(float(i), i + 1.0, label, c, 1)) for i, (r, label, c) in enumerate(rows)]


def test_top_takes_each_recordings_best_before_anyones_second():
    found = _found((0, "dog", 0.99), (0, "dog", 0.98), (0, "dog", 0.97), (1, "dog", 0.6), (2, "dog", 0.7),
                   (1, "cat", 0.9))
    shown = [(c.detection.label, c.recording, c.detection.confidence) for c in review_queue(found, "top", 4)]
    assert shown == [("cat", 1, 0.9), ("dog", 0, 0.99), ("dog", 0, 0.98), ("dog", 2, 0.7), ("dog", 1, 0.6)]
    assert [c.recording for c in review_queue(found, "top", 2) if c.detection.label == "dog"] == [0, 2]
    unknown = [Candidate(0, Detection(0.0, 1.0, "unknown", None, 1))]
    assert review_queue(unknown, "top", 5) == []  # the model abstained: no label to accept


def test_stratified_spans_the_confidence_range_and_random_repeats_by_seed():
    found = _found(*[(i % 4, "dog", 0.5 + i / 200) for i in range(100)])
    picked = sorted(c.detection.confidence for c in review_queue(found, "stratified", 5))
    assert len(picked) == 5 and picked[0] < 0.6 and picked[-1] > 0.9  # one from each fifth of the range
    assert {c.recording for c in review_queue(found, "stratified", 4)} == {0, 1, 2, 3}  # spread over recordings
    first, again, other = (review_queue(found, "random", 6, seed) for seed in (0, 0, 1))
    assert first == again and first != other and len({c.recording for c in first}) == 4
    crowded = review_queue(_found(*[(0, f"l{i % 300}", 0.9) for i in range(3000)]), "top", 10)
    assert len(crowded) == 300 * (MAX_QUEUE // 300) and len({c.detection.label for c in crowded}) == 300  # all labels
    with pytest.raises(ValueError, match="queue must be one of top, random, stratified, uncertain"):
        review_queue(found, "best", 5)


def test_uncertain_takes_what_sits_nearest_the_threshold_or_between_two_labels():
    """Issue 33: active learning's queue. Confidence 0.52 is nearer a 0.5 threshold than 0.3; a window
    whose top two labels are 0.90 and 0.88 is as unsure as one at the threshold."""
    found = [Candidate(0, Detection(float(i), i + 1.0, "dog", c, 1), margin) for i, (c, margin) in
             enumerate([(0.99, 0.95), (0.52, None), (0.30, None), (0.90, 0.02), (0.75, 0.6), (0.10, None)])]
    picked = review_queue(found, "uncertain", 2)
    assert sorted(c.detection.confidence for c in picked) == [0.52, 0.90]
    assert [c.detection.confidence for c in review_queue(found, "uncertain", 3, threshold=0.2)] == [0.9, 0.3, 0.1]


@pytest.fixture(scope="module")
def examples() -> list:
    return sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".wav", ".flac", ".ogg"))


def _client(folder, **settings) -> TestClient:  # noqa: ANN001
    return TestClient(create_app(ServeSettings(runtime="torch", reviews_dir=folder, **settings)))


@pytest.mark.slow
def test_a_review_is_heard_judged_exported_and_kept_across_a_restart(tmp_path, examples):
    reviews = tmp_path / "reviews"
    with _client(reviews) as client:
        result = client.post("/v1/predict", params={"keep": True}, files=files(*examples)).json()["result"]
        made = client.post(f"/v1/results/{result}/review", params={"per_label": 2, "min_confidence": 0.2})
        assert made.status_code == 201, made.text
        review = made.json()
        items, rid = review["items"], review["id"]
        assert len(items) >= 6 and {i["verdict"] for i in items} == {None}
        # verdicts on detections of two recordings at least (a dataset of one recording has no folds)
        others = [i for i in range(1, len(items)) if items[i]["recording"] != items[0]["recording"]]
        picks = [0, others[0], others[1], next(i for i in range(1, len(items)) if i not in others[:2])]
        said = dict(zip(picks, [("accepted", None), ("rejected", None), ("relabelled", "meow"), ("accepted", None)]))
        for index, (verdict, label) in said.items():
            answer = client.put(f"/v1/reviews/{rid}/items/{index}", params={"verdict": verdict, "label": label or ""}
                                if label else {"verdict": verdict})
            assert answer.status_code == 200 and answer.json()["verdict"] == verdict, answer.text
        client.put(f"/v1/reviews/{rid}/items/{picks[3]}", params={"verdict": "none"})  # taken back
        snippet = client.get(f"/v1/reviews/{rid}/items/0/audio", params={"pad": 1})
        assert snippet.status_code == 200 and snippet.headers["content-type"] == "audio/wav"
        heard = sf.info(io.BytesIO(snippet.content))
        duration = review["recordings"][items[0]["recording"]]["duration_s"]
        wanted = min(items[0]["end_s"] + 1, duration) - max(items[0]["start_s"] - 1, 0)
        assert abs(heard.duration - wanted) < 0.01, (heard.duration, wanted)
        for bad, status in [({"verdict": "relabelled"}, 422), ({"verdict": "maybe"}, 422)]:
            refused = client.put(f"/v1/reviews/{rid}/items/0", params=bad)
            assert refused.status_code == status and "Traceback" not in refused.text
        beyond = client.put(f"/v1/reviews/{rid}/items/{len(items)}", params={"verdict": "accepted"})
        assert beyond.status_code == 422 and beyond.json()["error"].startswith(f"item: the review holds {len(items)}")
        for unknown in ("nope", "a.b", "x" * 64):
            missing = client.get(f"/v1/reviews/{unknown}")
            assert missing.status_code == 404 and missing.json()["error"].startswith("no review"), missing.text
    assert not list(reviews.glob(".*"))  # nothing half-made left
    with _client(reviews) as restarted:  # a new server: the same review, every verdict kept
        assert [r["id"] for r in restarted.get("/v1/reviews").json()] == [rid]
        kept = restarted.get(f"/v1/reviews/{rid}").json()
        assert [(kept["items"][i]["verdict"], kept["items"][i]["new_label"]) for i in picks] == [
            ("accepted", None), ("rejected", None), ("relabelled", "meow"), (None, None)]
        assert sum(bool(i["verdict"]) for i in kept["items"]) == 3
        archive = restarted.get(f"/v1/reviews/{rid}/export")
        assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
        zipfile.ZipFile(io.BytesIO(archive.content)).extractall(tmp_path / "export")
        assert restarted.app.state.server.folder.requests() == []  # written to a file, sent, then deleted
        assert restarted.delete(f"/v1/reviews/{rid}").status_code == 204
        assert restarted.get(f"/v1/reviews/{rid}").status_code == 404 and restarted.get("/v1/reviews").json() == []
    selections, problems = find_selections(tmp_path / "export" / "reviewed")  # as `audiocnn train` reads them
    assert sorted(s.label for s in selections) == sorted([items[0]["label"], "background", "meow"]) and not problems
    assert sorted((s.recording.name, s.begin_s, s.end_s) for s in selections) == sorted(
        (review["recordings"][items[i]["recording"]]["name"], items[i]["start_s"], items[i]["end_s"]) for i in picks[:3])


@pytest.mark.slow
def test_reviews_are_bounded_and_a_review_needs_detections(tmp_path, examples):
    with _client(tmp_path / "reviews", reviews_mb=0.5) as client:
        result = client.post("/v1/predict", params={"keep": True}, files=files(*examples)).json()["result"]
        full = client.post(f"/v1/results/{result}/review", params={"min_confidence": 0.0})
        assert full.status_code == 507 and "--reviews-mb" in full.json()["error"]
        none = client.post(f"/v1/results/{result}/review", params={"min_confidence": 1.0})
        assert none.status_code == 422 and "no detection at confidence 1 or more" in none.json()["error"]
        assert client.post("/v1/results/gone/review").status_code == 404
    assert not (tmp_path / "reviews").exists() or not list((tmp_path / "reviews").iterdir())


def test_a_review_half_made_when_its_server_was_killed_is_removed(tmp_path):
    gone = 2**22 + 12_345  # above Linux's largest PID: no such process
    for pid in (gone, os.getpid()):
        leftover = tmp_path / f".abc.{pid}.partial" / "recordings"
        leftover.mkdir(parents=True)
        (leftover / "0000.wav").write_bytes(b"RIFF")
    store = ReviewStore(tmp_path, 1 << 20)
    assert not (tmp_path / f".abc.{gone}.partial").exists() and store.reviews() == []
    assert (tmp_path / f".abc.{os.getpid()}.partial").exists()  # a live server's review being made is left alone
    (tmp_path / "notes").mkdir()  # not a review: left alone, not listed, and it hides no other
    (tmp_path / "notes" / "review.json").write_text(json.dumps({"items": "?"}))
    assert store.reviews() == [] and (tmp_path / "notes").exists()
    with pytest.raises(BrokenReview, match="notes/review.json: not a review audiocnn wrote"):
        store.get("notes")
