"""Kept results (issue 32): one upload classified once, then downloaded in every format, filtered,
re-run with other options and explained by its id, with no second upload and no second
classification; the store stays within its count, byte and idle-time bounds.

The real app on the bundled model through Starlette's TestClient; the store on real upload folders.
"""

from __future__ import annotations

import io

import pytest
from starlette.testclient import TestClient

from audiocnn.serve import ServeSettings, create_app
from audiocnn.serve.results import ResultStore, UnknownResult
from audiocnn.serve.service import ModelService
from audiocnn.serve.uploads import ServerFolder
from test_serve import DOG, THUNDER, _metric, files

FORMATS = ("json", "csv", "raven", "kaleidoscope", "scores", "table")


@pytest.fixture(scope="module")
def client():
    service = ModelService(ServeSettings(runtime="torch"))
    with TestClient(create_app(service.settings, service=service)) as client:
        yield client


def _kept(client: TestClient, *paths) -> str:  # noqa: ANN002
    answer = client.post("/v1/predict", params={"keep": True}, files=files(*paths))
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-audiocnn-result"] == answer.json()["result"]
    return answer.json()["result"]


@pytest.mark.slow
def test_a_kept_result_downloads_in_every_format_without_classifying_again(client):
    """Issue 32: every download re-uploaded and re-classified everything (13 s for the Raven table
    of a 10-minute file). A kept result is only written again: the same text as classifying anew."""
    result = _kept(client, DOG, THUNDER)
    for format_ in FORMATS:
        options = {"format": format_, "min_confidence": 0.3, "top_k": 2}
        classified = _metric(client, "audiocnn_audio_seconds_total")
        again = client.get(f"/v1/results/{result}", params=options)
        assert again.status_code == 200 and again.headers["x-audiocnn-result"] == result
        assert _metric(client, "audiocnn_audio_seconds_total") == classified  # nothing classified again
        fresh = client.post("/v1/predict", params=options, files=files(DOG, THUNDER))
        if format_ == "json":
            kept = again.json()
            assert kept.pop("result") == result and kept == fresh.json()
        else:
            assert again.text == fresh.text and again.headers["content-type"] == fresh.headers["content-type"]


@pytest.mark.slow
def test_a_kept_result_is_rerun_explained_and_deleted_without_an_upload(client):
    result = _kept(client, DOG, THUNDER)
    first = client.get(f"/v1/results/{result}").json()
    rerun = client.post(f"/v1/results/{result}/predict", params={"hop": 1.0})
    assert rerun.status_code == 200 and rerun.json()["result"] == result
    windows = [len(f["windows"]) for f in rerun.json()["files"]]
    assert windows[1] > [len(f["windows"]) for f in first["files"]][1]  # 1 s hops: more windows of the 10 s file
    assert [len(f["windows"]) for f in client.get(f"/v1/results/{result}").json()["files"]] == windows  # kept
    picture = client.post(f"/v1/results/{result}/explain", params={"file": 1, "method": "gradcam"})
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    assert picture.headers["x-audiocnn-label"] == first["files"][1]["summary"][0]["label"]
    beyond = client.post(f"/v1/results/{result}/explain", params={"file": 2})
    assert beyond.status_code == 422 and beyond.json()["error"] == ("file: the result holds 2 recording(s), "
                                                                   "numbered from 0 (got 2)")
    assert client.delete(f"/v1/results/{result}").status_code == 204
    for gone in (client.get(f"/v1/results/{result}"), client.delete(f"/v1/results/{result}"),
                 client.post(f"/v1/results/{result}/predict")):
        assert gone.status_code == 404 and "send the recordings again" in gone.json()["error"]


def test_a_request_that_keeps_nothing_says_so(client, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    refused = client.post("/v1/predict", params={"keep": True}, files=files(empty))
    assert refused.status_code == 422 and "x-audiocnn-result" not in refused.headers  # nothing to keep
    plain = client.post("/v1/predict", files=files(DOG))
    assert "result" not in plain.json() and "x-audiocnn-result" not in plain.headers


def _folder(server: ServerFolder, size: int):  # noqa: ANN202
    folder = server.request()
    upload, handle = folder.open_next("a.wav")
    with handle:
        handle.write(b"x" * size)
    return folder


def test_the_store_keeps_within_its_count_bytes_and_idle_time(tmp_path):
    server, now = ServerFolder(tmp_path), [0.0]
    store = ResultStore(max_results=2, max_bytes=1000, idle_seconds=60, clock=lambda: now[0])
    a, b = (store.keep(_folder(server, 100), [], True) for _ in range(2))
    store.get(a.id)  # a is now the most recently used
    c = store.keep(_folder(server, 100), [], True)
    assert len(store) == 2 and not b.folder.path.exists()  # the least recently used went, from disk too
    with pytest.raises(UnknownResult):
        store.get(b.id)
    d = store.keep(_folder(server, 901), [], True)  # a goes for the count, then c: 100 + 901 bytes > 1000
    assert store.get(d.id) is d and len(store) == 1
    assert not a.folder.path.exists() and not c.folder.path.exists()
    too_large = _folder(server, 1001)
    assert store.keep(too_large, [], True) is None and not too_large.kept  # over the whole bound: not kept
    now[0] += 61
    with pytest.raises(UnknownResult):
        store.get(d.id)  # idle past 60 s
    assert not d.folder.path.exists()
    e = store.keep(_folder(server, 10), [], True)
    store.forget(e.id)
    assert not e.folder.path.exists()
    e.folder.close()  # a kept folder's request ending never deleted it; forgetting did
    f = store.keep(_folder(server, 10), [], True)
    store.close()
    assert not f.folder.path.exists()
    server.close()


@pytest.mark.slow
def test_a_stretch_of_a_kept_recording_is_drawn_again_in_detail(client):
    """Issue 32: the timeline could not be zoomed. A stretch of a kept recording is drawn again from its
    audio (nothing classified again), its time axis where the answer says, and bad stretches refused."""
    import base64

    import numpy as np
    from PIL import Image

    result = _kept(client, DOG, THUNDER)
    classified = _metric(client, "audiocnn_audio_seconds_total")
    zoomed = client.get(f"/v1/results/{result}/timeline", params={"file": 1, "start": 2, "end": 6, "width": 800})
    assert zoomed.status_code == 200, zoomed.text
    axes = zoomed.json()["timeline_axes"]
    assert (axes["start"], axes["end"], axes["seconds"]) == (2.0, 6.0, 10.0) and 0 < axes["left"] < axes["right"] < 1
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(zoomed.json()["timeline_png"]))))
    assert picture.shape[1] == 800
    assert _metric(client, "audiocnn_audio_seconds_total") == classified
    clamped = client.get(f"/v1/results/{result}/timeline", params={"file": 1, "start": 9.8, "end": 30}).json()
    assert (clamped["timeline_axes"]["start"], clamped["timeline_axes"]["end"]) == (9.0, 10.0)  # 1 s at least, inside
    for bad, message in [({"file": 2, "end": 5}, "file: the result holds no classified recording 2"),
                         ({"start": 3, "end": 3.5}, "end: at least 1 s after start")]:
        refused = client.get(f"/v1/results/{result}/timeline", params=bad)
        assert refused.status_code == 422 and refused.json()["error"].startswith(message), refused.text
