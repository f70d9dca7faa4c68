"""`audiocnn serve`: the real app on the real bundled model, through HTTP (Starlette's TestClient).

Every answer is checked against what the CLI gives for the same file and options; every bad
input the CLI tests is refused with a 4xx and one line naming the file; limits, the full pool,
the API key and the metrics are exercised on the real code paths.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from starlette.testclient import TestClient

from audiocnn.bundled import default_model
from audiocnn.serve import ServeSettings, create_app
from audiocnn.serve.service import ModelService
from conftest import REPO, served
from test_audio import BAD_FILES

EXAMPLES = REPO / "examples"
DOG = EXAMPLES / "dog-bark.wav"
ROOSTER = EXAMPLES / "rooster-crow.ogg"
THUNDER = EXAMPLES / "thunderstorm-thunder.flac"  # 10 s: several windows


@pytest.fixture(scope="module")
def service() -> ModelService:
    """The bundled model, loaded once for every app of this module (as one server loads it once)."""
    return ModelService(ServeSettings(runtime="torch"))


@pytest.fixture(scope="module")
def client(service):
    with TestClient(create_app(service.settings, service=service)) as client:
        yield client


def files(*paths: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (path.name, path.read_bytes(), "application/octet-stream")) for path in paths]


def cli_json(cli, *args) -> dict:
    result = cli("predict", *args, "--format", "json", "--runtime", "torch", "--no-progress")
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.mark.slow
def test_predict_answers_the_clis_json_document(client, cli):
    answer = client.post("/v1/predict", files=files(DOG, ROOSTER))
    assert answer.status_code == 200 and answer.headers["x-audiocnn-failed"] == "0"
    served = answer.json()
    expected = cli_json(cli, DOG, ROOSTER)
    assert [f["path"] for f in served["files"]] == ["dog-bark.wav", "rooster-crow.ogg"]  # the names sent, no path
    for got, want in zip(served["files"], expected["files"]):
        assert got["duration_s"] == pytest.approx(want["duration_s"])
        assert [e["label"] for e in got["summary"]] == [e["label"] for e in want["summary"]]
        assert [e["probability"] for e in got["summary"]] == pytest.approx(
            [e["probability"] for e in want["summary"]], abs=1e-4)
        assert len(got["windows"]) == len(want["windows"])
    assert served["files"][0]["summary"][0]["label"] == "dog"
    assert served["failed"] == []


@pytest.mark.slow
def test_options_are_predicts_options(client, cli):
    args = {"top_k": 2, "window": 2.0, "hop": 1.0, "unknown_below": 0}
    served = client.post("/v1/predict", params=args, files=files(THUNDER)).json()["files"][0]
    expected = cli_json(cli, THUNDER, "--top-k", "2", "--window", "2", "--hop", "1", "--unknown-below", "0")["files"][0]
    assert [[e["label"] for e in w["top"]] for w in served["windows"]] == [
        [e["label"] for e in w["top"]] for w in expected["windows"]]
    assert all(len(w["top"]) == 2 for w in served["windows"])
    assert len(served["windows"]) == len(expected["windows"]) > 3


@pytest.mark.parametrize("fmt, media, first_line", [
    ("csv", "text/csv", "path,window,start_s,end_s,label_1,probability_1"),
    ("raven", "text/tab-separated-values", "Selection\tView\tChannel\tBegin Time (s)"),
    ("table", "text/plain", "dog-bark.wav  ("),
    ("kaleidoscope", "text/csv", "INDIR,FOLDER,IN FILE,CHANNEL,OFFSET,DURATION,AUTO ID*"),
    ("scores", "text/csv", "file,start_time,end_time,dog,rooster,pig"),
    ("audacity", "text/plain", "0.000000\t"),
])
def test_other_formats(client, fmt, media, first_line):
    answer = client.post("/v1/predict", params={"format": fmt}, files=files(DOG))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith(media)
    assert answer.text.splitlines()[0].startswith(first_line)


def test_detections_merge_and_a_label_track_is_one_recording(client):
    merged = client.post("/v1/predict", params={"format": "raven", "merge_consecutive": "true"}, files=files(THUNDER))
    plain = client.post("/v1/predict", params={"format": "raven"}, files=files(THUNDER))
    assert merged.status_code == plain.status_code == 200
    assert len(merged.text.splitlines()) < len(plain.text.splitlines())
    refused = client.post("/v1/predict", params={"format": "csv", "merge_consecutive": "true"}, files=files(THUNDER))
    assert refused.status_code == 422 and "lists windows" in refused.json()["error"]
    two = client.post("/v1/predict", params={"format": "audacity"}, files=files(DOG, THUNDER))
    assert two.status_code == 422 and "one recording" in two.json()["error"]


def test_a_raw_body_is_one_recording(client):
    answer = client.post("/v1/predict", params={"name": "field/site-3.wav"}, content=DOG.read_bytes(),
                         headers={"content-type": "audio/wav"})
    assert answer.status_code == 200
    document = answer.json()["files"][0]
    assert document["path"] == "site-3.wav" and document["summary"][0]["label"] == "dog"


@pytest.mark.slow
def test_timeline_pictures_come_with_json(client):
    document = client.post("/v1/predict", params={"timeline": "true"}, files=files(DOG)).json()["files"][0]
    assert base64.b64decode(document["timeline_png"]).startswith(b"\x89PNG")
    refused = client.post("/v1/predict", params={"timeline": "true", "format": "csv"}, files=files(DOG))
    assert refused.status_code == 422 and "format=json" in refused.json()["error"]


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kind", [k for k in BAD_FILES if k != "missing"])
def test_every_bad_file_is_a_4xx_naming_it(client, tmp_path, kind):
    make, problem = BAD_FILES[kind]
    path = make(tmp_path)
    answer = client.post("/v1/predict", files=files(path))
    assert answer.status_code == 422
    body = answer.json()
    assert body["file"] == path.name and problem in body["error"] and body["error"].startswith(path.name)
    assert "audiocnn-serve-" not in answer.text and "Traceback" not in answer.text  # nothing of the server


def test_one_bad_file_does_not_lose_the_good_ones(client, tmp_path):
    empty = tmp_path / "broken.wav"
    empty.write_bytes(b"")
    answer = client.post("/v1/predict", files=files(DOG, empty, ROOSTER))
    assert answer.status_code == 200 and answer.headers["x-audiocnn-failed"] == "1"
    body = answer.json()
    assert [f["path"] for f in body["files"]] == ["dog-bark.wav", "rooster-crow.ogg"]
    assert body["failed"][0]["path"] == "broken.wav" and "file is empty" in body["failed"][0]["error"]


@pytest.mark.parametrize("params, problem", [
    ({"top_k": 0}, "top_k: should be greater than or equal to 1 (got '0')"),
    ({"format": "xml"}, "format: should be 'table', 'csv', 'json', 'raven', 'audacity', 'kaleidoscope' or 'scores'"),
    ({"hop": -1}, "hop: should be greater than 0"),
    ({"min_confidence": 2}, "min_confidence: should be less than or equal to 1"),
    ({"topk": 2}, "topk: not an option here"),
    ({"runtime": "torch"}, "runtime: not an option here"),  # the server's own choice
])
def test_bad_options_are_one_line_422s(client, params, problem):
    answer = client.post("/v1/predict", params=params, files=files(DOG))
    assert answer.status_code == 422 and problem in answer.json()["error"]


def test_no_audio_at_all_is_a_422(client):
    answer = client.post("/v1/predict", content=b"", headers={"content-type": "audio/wav"})
    assert answer.status_code == 422 and "holds no audio" in answer.json()["error"]


@pytest.mark.slow
def test_uploads_never_stay_on_the_server(service, tmp_path, monkeypatch):
    """Every request's files lie in the server's own folder (`audiocnn-serve-PID-…` in the temporary
    folder), are deleted when the request ends, and the folder goes when the server stops."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 10)
    with TestClient(create_app(service.settings, service=service)) as client:
        folder = client.app.state.server.folder
        assert folder.path.parent == tmp_path and folder.path.name.startswith("audiocnn-serve-")
        assert client.post("/v1/predict", files=files(DOG, bad)).status_code == 200
        assert client.post("/v1/explain", files=files(DOG), params={"method": "gradcam"}).status_code == 200
        assert client.post("/v1/predict", params={"format": "xml"}, files=files(DOG)).status_code == 422
        assert client.post("/v1/predict", content=b"RIFF" * 10, params={"name": "raw.wav"}).status_code == 422
        assert folder.requests() == []
    assert not list(tmp_path.glob("audiocnn-serve-*"))


# ----------------------------------------------------------------------------- limits, pool, key


def test_size_and_length_limits(service, tmp_path):
    small = ServeSettings(runtime="torch", max_upload_mb=0.05, max_seconds=3.0)
    with TestClient(create_app(small, service=_sharing(service, small))) as client:
        too_big = client.post("/v1/predict", files=files(DOG))  # 0.16 MB
        assert too_big.status_code == 413 and "--max-upload-mb" in too_big.json()["error"]

        def chunks():  # no Content-Length: counted while it streams
            for _ in range(20):
                yield b"\0" * 8192

        streamed = client.post("/v1/predict", content=chunks(), headers={"content-type": "audio/wav"})
        assert streamed.status_code == 413
    clip = tmp_path / "long.wav"
    sf.write(clip, np.random.default_rng(0).normal(0, 0.01, 16_000 * 4).astype(np.float32), 16_000)  # 4 s
    roomy = ServeSettings(runtime="torch", max_seconds=3.0)
    with TestClient(create_app(roomy, service=_sharing(service, roomy))) as client:
        too_long = client.post("/v1/predict", files=files(clip))
        assert too_long.status_code == 422 and "over this server's limit of 3 s" in too_long.json()["error"]
        assert too_long.json()["file"] == "long.wav"


def _sharing(service: ModelService, settings: ServeSettings) -> ModelService:
    """The loaded model under other limits (a server with those options, without loading it again)."""
    shared = ModelService.__new__(ModelService)
    shared.__dict__.update(service.__dict__)
    shared.settings = settings
    return shared


@pytest.mark.slow
def test_a_full_pool_answers_503_with_retry_after(service, tmp_path):
    long = tmp_path / "hour.flac"
    sf.write(long, np.random.default_rng(1).normal(0, 0.05, 16_000 * 600).astype(np.float32), 16_000)
    settings = ServeSettings(runtime="torch", concurrency=1, queue=0)
    with TestClient(create_app(settings, service=_sharing(service, settings))) as client:
        first: dict = {}
        worker = threading.Thread(target=lambda: first.update(answer=client.post("/v1/predict", files=files(long))))
        worker.start()
        deadline = time.monotonic() + 60
        while client.get("/healthz").json()["jobs"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        busy = client.post("/v1/predict", files=files(DOG))
        worker.join(120)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
        assert "workers are busy" in busy.json()["error"]
        assert first["answer"].status_code == 200
        assert client.post("/v1/predict", files=files(DOG)).status_code == 200  # the slot came back


def test_the_api_key(service):
    settings = ServeSettings(runtime="torch", api_key="s3cret-key")
    with TestClient(create_app(settings, service=_sharing(service, settings))) as client:
        assert client.post("/v1/predict", files=files(DOG)).status_code == 401
        assert client.get("/v1/model", headers={"X-API-Key": "wrong-key!"}).status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.post("/v1/predict", files=files(DOG), headers={"X-API-Key": "s3cret-key"}).status_code == 200
        assert client.get("/v1/model", headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        assert client.get("/healthz").status_code == 200 and client.get("/").status_code == 200


# ----------------------------------------------------------------------------- explain, model, metrics, page


@pytest.mark.slow
def test_explain_draws_the_picture_or_gives_the_arrays(client):
    picture = client.post("/v1/explain", params={"method": "gradcam"}, files=files(DOG))
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    assert picture.headers["x-audiocnn-label"] == "dog"
    arrays = client.post("/v1/explain", params={"method": "ig", "steps": 4, "output": "npz", "start": 0},
                         files=files(DOG))
    with np.load(io.BytesIO(arrays.content)) as saved:
        assert set(saved.files) == {"image", "ig"} and saved["ig"].shape == saved["image"].shape
    unknown = client.post("/v1/explain", params={"target": "dragon"}, files=files(DOG))
    assert unknown.status_code == 422 and unknown.json()["error"].startswith("target: 'dragon' is not one of")
    late = client.post("/v1/explain", params={"start": 100}, files=files(DOG)).json()["error"]
    assert late == "start: 100 s is not within dog-bark.wav, which is 0.90 s long"  # the API's name, the client's file
    too_many = client.post("/v1/explain", params={"steps": 1000}, files=files(DOG)).json()["error"]
    assert too_many == "steps: must be 2-256 (got 1000)"
    two = client.post("/v1/explain", files=files(DOG, ROOSTER))
    assert two.status_code == 422 and "one file" in two.json()["error"]


def test_model_description_health_and_openapi(client):
    model = client.get("/v1/model").json()
    assert len(model["labels"]) == 50 and model["window_seconds"] == 5.0 and model["sample_rate"] == 16_000
    assert model["model_card"].startswith("# Model card") and model["name"] == default_model().name
    assert client.get("/healthz").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/explain", "/v1/model", "/healthz", "/metrics"} <= set(paths)


@pytest.mark.slow
def test_the_openapi_document_says_what_the_api_takes_and_answers(client):
    """Issue 32: the document had no request body for the uploads (so "Try it out" and generated clients
    could not send a file), showed FastAPI's default 422 shape instead of the one sent, left out
    401/413/503/504 and the API key, and /docs loaded Swagger UI from a CDN."""
    document = client.get("/openapi.json").json()
    predict, explain = document["paths"]["/v1/predict"]["post"], document["paths"]["/v1/explain"]["post"]
    many = predict["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["file"]
    assert many["type"] == "array" and many["items"]["format"] == "binary"
    one = explain["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["file"]
    assert one["format"] == "binary"
    assert "application/octet-stream" in predict["requestBody"]["content"]
    for operation in (predict, explain):
        assert {"400", "401", "408", "413", "422", "500", "503", "504"} <= set(operation["responses"])
        for status in ("401", "413", "422", "503", "504"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorAnswer"}, status
        assert "Retry-After" in operation["responses"]["503"]["headers"]
        assert {"APIKeyHeader": []} in operation["security"]
    assert "HTTPValidationError" not in json.dumps(document)  # the shape FastAPI would send, not ours
    assert document["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    refused = client.post("/v1/predict", params={"top_k": 0}, files=files(DOG)).json()  # what it says is sent
    assert set(refused) <= set(document["components"]["schemas"]["ErrorAnswer"]["properties"])
    html = client.get("/docs").text
    assets = [part.split('"')[0] for part in html.split('src="')[1:] + html.split('href="')[1:]]
    assert assets and all(a.startswith("/docs-assets/") for a in assets), assets
    assert all(client.get(a).status_code == 200 for a in assets)
    assert client.get("/redoc").status_code == 404  # ReDoc's page fetches a logo from its maker's CDN


@pytest.mark.slow
def test_phone_and_browser_recordings_are_classified(client, tmp_path):
    """Issue 32: the page's file picker offered `.m4a` and the server refused it; `.webm` (what a
    browser's MediaRecorder writes, with no stated length) too."""
    from conftest import encode_with_ffmpeg

    sent = [encode_with_ffmpeg(DOG, tmp_path / "memo.m4a"), encode_with_ffmpeg(DOG, tmp_path / "live.webm", live=True)]
    answer = client.post("/v1/predict", files=files(*sent))
    assert answer.status_code == 200 and answer.json()["failed"] == [], answer.text
    assert [f["summary"][0]["label"] for f in answer.json()["files"]] == ["dog", "dog"]


def test_metrics_count_requests_errors_and_audio(client, tmp_path):
    before = _metric(client, "audiocnn_audio_seconds_total")
    client.post("/v1/predict", files=files(DOG))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    client.post("/v1/predict", files=files(empty))
    text = client.get("/metrics").text
    assert _metric(client, "audiocnn_audio_seconds_total") == pytest.approx(before + sf.info(DOG).duration, abs=0.01)
    assert 'audiocnn_errors_total{kind="bad_audio"}' in text
    assert 'audiocnn_requests_total{route="/v1/predict",status="200"}' in text
    assert 'audiocnn_request_seconds_bucket{le="0.25",route="/v1/predict"}' in text
    assert _metric(client, "process_resident_memory_bytes") > 100 * 2**20  # the process: torch and a model
    assert _metric(client, "process_cpu_seconds_total") > 0 and _metric(client, "process_open_fds") > 0


def _metric(client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_the_page_and_its_assets_are_served_with_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>audiocnn" in page.text
    for asset in ("/page/app.js", "/page/app.css"):
        assert client.get(asset).status_code == 200
    for text in (page.text, client.get("/page/app.js").text, client.get("/page/app.css").text):
        assert "http://" not in text and "https://" not in text  # no CDN: it works offline


def test_the_package_ships_the_page():
    import importlib.resources

    page = importlib.resources.files("audiocnn.serve") / "page"
    assert {"index.html", "app.js", "app.css"} <= {p.name for p in page.iterdir()}


# ----------------------------------------------------------------------------- the command


@pytest.mark.slow
def test_audiocnn_serve_starts_answers_and_stops():
    import urllib.request

    with served("--runtime", "int8") as server:
        request = urllib.request.Request(f"{server.url}/v1/predict?format=csv&name=dog.wav",
                                         data=DOG.read_bytes(), headers={"Content-Type": "audio/wav"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.read().decode().splitlines()[1].startswith("dog.wav,clip,")
    assert server.process.returncode == 0, server.output
    assert f"serving {default_model().name} on {server.url}/" in server.output


def test_serve_refuses_bad_settings_in_one_line(cli):
    result = cli("serve", "--concurrency", "0")
    assert result.code == 1 and "--concurrency must be 1-256" in result.err
    short_key = cli("serve", "--api-key", "abc")
    assert short_key.code == 1 and "--api-key must be at least 8 characters" in short_key.err


@pytest.mark.slow
def test_the_server_builds_its_cnn_only_when_an_explanation_needs_it(tmp_path):
    """Classifying runs the 8-bit or checked ONNX graph, so the server starts without the CNN (timm,
    the weights: 2 s and 190 MB of its start); the first explanation builds it, and explains with it."""
    import shutil

    from audiocnn.bundle import NoBackbone
    from audiocnn.serve.pool import Ticket
    from audiocnn.serve.uploads import Upload

    service = ModelService(ServeSettings(runtime="int8"))
    assert isinstance(service.bundle.model.backbone, NoBackbone)
    bark = Path(shutil.copy(DOG, tmp_path / "bark.wav"))
    body, media_type, _ = service.explain(Upload("bark.wav", bark), Ticket(seconds=120), method="ig", target=None,
                                          start=None, steps=4, baseline="mean", output="npz")
    assert not isinstance(service.bundle.model.backbone, NoBackbone)
    arrays = np.load(io.BytesIO(body))
    assert media_type == "application/octet-stream" and {"image", "ig"} <= set(arrays.files)
    assert arrays["ig"].shape[-2:] == arrays["image"].shape[-2:] and np.abs(arrays["ig"]).sum() > 0


def test_the_default_server_admits_16_clients_at_once_and_refuses_the_next_beyond_its_places():
    """Issue 32: with the old default queue of 8, 16 clients at once got 36% of their requests answered
    503 (benchmarks/serve.py). The default pool now takes 16 requests at once: running or waiting."""
    from audiocnn.serve.pool import PoolFull, WorkerPool

    defaults = ServeSettings()
    pool = WorkerPool(defaults.concurrency, defaults.queue)
    for _ in range(16):
        pool.admit()
    while pool.admitted < defaults.concurrency + defaults.queue:
        pool.admit()
    with pytest.raises(PoolFull):  # bounded all the same: one more is a 503 with Retry-After
        pool.admit()
