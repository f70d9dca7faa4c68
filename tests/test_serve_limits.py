"""Issue 29, the server's limits that live in the library and the app: bounded windows, the duration
limit on audio decoded (not the header), one line for a surprise, range-checked settings.

The shared bundled model, loaded once, answers through Starlette's TestClient (the real app);
the behaviours that need a real server process (timeouts, kills, connections) are in
test_serve_guards.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from starlette.testclient import TestClient

from audiocnn import audio
from audiocnn.errors import OptionError
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import Predictor, TooLong
from audiocnn.serve import ServeSettings, create_app
from audiocnn.serve.service import ModelService
from test_serve import DOG, ROOSTER, _sharing, files


@pytest.fixture(scope="module")
def service() -> ModelService:
    return ModelService(ServeSettings(runtime="torch"))


def lying_mp3(path: Path, seconds: int = 200) -> Path:
    """An MP3 holding `seconds` of audio whose Xing header claims 9 frames (under a second): the limit
    once trusted the header, and a file like it (1200 s, claiming 0.65 s) was classified whole."""
    rate = 8_000
    wave = (0.1 * np.random.default_rng(0).standard_normal(rate * seconds)).astype(np.float32)
    sf.write(path, wave, rate, format="MP3", subtype="MPEG_LAYER_III")
    data = bytearray(path.read_bytes())
    xing = data.find(b"Xing")
    assert xing > 0 and int.from_bytes(data[xing + 4: xing + 8], "big") & 1  # the frame count is there
    data[xing + 8: xing + 12] = (9).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("window, hop, option, problem", [
    (None, 0.0001, "hop", "must be at least 0.5 s, a tenth of the 5 s window"),
    (1e-9, None, "window", "must be between 0.5 s and 20 s"),
    (600, None, "window", "must be between 0.5 s and 20 s"),
    (float("nan"), None, "window", "should be a finite number"),
    (None, float("inf"), "hop", "should be a finite number"),
])
def test_hop_and_window_are_bounded_where_the_library_checks_them(service, cli, window, hop, option, problem):
    """`?hop=0.0001` or `?window=1e-9` held a worker for hours, and `?window=600` on a 1 s upload took
    the server past 6 GiB: the options refuse them once, for the library, the CLI and the server, and
    each names the option its own way (`hop`, `--hop`)."""
    with pytest.raises(OptionError) as refused:
        Predictor(service.bundle, PredictOptions(window=window, hop=hop), build=False)
    assert refused.value.option == option and problem in refused.value.problem
    args = [*(["--window", str(window)] if window is not None else []), *(["--hop", str(hop)] if hop is not None else [])]
    result = cli("predict", DOG, *args, "--no-progress", "--runtime", "torch")
    assert result.code == 1 and f"error: --{option}: {problem}" in result.err
    assert len(result.err.strip().splitlines()) == 1
    with TestClient(create_app(service.settings, service=service)) as client:
        started = time.monotonic()
        params = {k: str(v) for k, v in (("window", window), ("hop", hop)) if v is not None}
        answer = client.post("/v1/predict", params=params, files=files(DOG))
        error = answer.json()["error"]
        assert answer.status_code == 422 and error.startswith(f"{option}: {problem}") and "--" not in error
        assert time.monotonic() - started < 5


def test_longer_windows_are_scored_in_smaller_batches(service):
    """Memory per batch stays that of 32 trained windows: a 20 s window is scored 8 at a time."""
    assert Predictor(service.bundle, PredictOptions(window=20), build=False).batch_size == 8
    assert Predictor(service.bundle, PredictOptions(window=2), build=False).batch_size == 32


@pytest.mark.slow
def test_the_duration_limit_counts_audio_decoded_not_the_header(service, tmp_path):
    mp3 = lying_mp3(tmp_path / "short-claim.mp3")
    assert audio.info(mp3).duration < 1  # what the header says
    predictor = Predictor(service.bundle, PredictOptions(runtime="torch"))
    with pytest.raises(TooLong, match="more than 60 s of audio"):
        predictor.predict(mp3, max_seconds=60)
    settings = ServeSettings(runtime="torch", max_seconds=60)
    with TestClient(create_app(settings, service=_sharing(service, settings))) as client:
        answer = client.post("/v1/predict", files=files(mp3, DOG))
        assert answer.status_code == 200 and answer.headers["x-audiocnn-failed"] == "1"
        failed = answer.json()["failed"][0]
        assert failed["path"] == "short-claim.mp3" and "over this server's limit of 60 s" in failed["error"]
        assert [f["path"] for f in answer.json()["files"]] == ["dog-bark.wav"]


def test_an_unexpected_failure_is_one_line_naming_the_file_and_the_server_goes_on(service, tmp_path, monkeypatch):
    """A library's surprise (here a ValueError planted in the decoder for one upload) is that upload's line,
    `internal error (ValueError)`, with its message and traceback in the log, not in the answer (a message
    may name the server's files); the other files of the request are answered, and so are later requests."""
    monkeypatch.setenv("AUDIOCNN_LOG_DIR", str(tmp_path / "logs"))
    real_stream = audio.stream

    def stream(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if Path(path).name == "0001.wav":  # the second upload of a request
            raise ValueError("the decoder met something new")
        return real_stream(path, *args, **kwargs)

    monkeypatch.setattr(audio, "stream", stream)
    poison = tmp_path / "poison.wav"
    poison.write_bytes(DOG.read_bytes())
    with TestClient(create_app(service.settings, service=service)) as client:
        mixed = client.post("/v1/predict", files=files(DOG, poison, ROOSTER))
        assert mixed.status_code == 200 and mixed.headers["x-audiocnn-failed"] == "1"
        failure = mixed.json()["failed"][0]
        assert failure["path"] == "poison.wav"
        assert failure["error"] == "poison.wav: internal error (ValueError); the server's log has the details"
        assert "Traceback" not in mixed.text and str(tmp_path) not in mixed.text
        assert [f["path"] for f in mixed.json()["files"]] == ["dog-bark.wav", "rooster-crow.ogg"]

        def surprise(path, *_, **__):  # noqa: ANN001, ANN002, ANN003, ANN202 - as an OSError would, it names the file
            raise FileNotFoundError(2, "No such file or directory", str(path))

        monkeypatch.setattr(audio, "stream", surprise)
        only = client.post("/v1/predict", params={"name": "lone.wav"}, content=DOG.read_bytes())
        assert only.status_code == 500 and only.json()["file"] == "lone.wav"
        assert only.json()["error"] == "lone.wav: internal error (FileNotFoundError); the server's log has the details"
        assert "audiocnn-serve" not in only.text and "/tmp" not in only.text
        monkeypatch.setattr(audio, "stream", real_stream)
        assert client.post("/v1/predict", files=files(DOG)).status_code == 200  # the server goes on
    logged = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    assert "ValueError: the decoder met something new" in logged and "Traceback" in logged


@pytest.mark.parametrize("option, value, problem", [
    ("--max-upload-mb", "inf", "--max-upload-mb must be a number of more than 0"),
    ("--max-upload-mb", "nan", "--max-upload-mb must be a number"),
    ("--max-seconds", "-1", "--max-seconds must be a number of more than 0"),
    ("--max-seconds", "1e9", "--max-seconds must be a number of more than 0 and at most 604800"),
    ("--timeout", "0", "--timeout must be a number of more than 0"),
    ("--timeout", "inf", "--timeout must be"),
    ("--upload-timeout", "nan", "--upload-timeout must be"),
    ("--header-timeout", "-5", "--header-timeout must be"),
    ("--concurrency", "0", "--concurrency must be 1-256"),
    ("--queue", "-1", "--queue must be 0-10000"),
    ("--max-connections", "0", "--max-connections must be 1-65535"),
    ("--max-files", "0", "--max-files must be 1-10000"),
    ("--port", "0", "--port must be 1-65535"),
    ("--allow-host", "evil.example/x", "--allow-host 'evil.example/x': not a host name"),
    ("--api-key", "abc", "--api-key must be at least 8 characters"),
])
def test_every_setting_is_range_checked_in_one_line(cli, option, value, problem):
    """`--max-upload-mb inf` gave a traceback; every number is checked, with its name and range."""
    result = cli("serve", option, value)
    assert result.code == 1 and problem in result.err and len(result.err.strip().splitlines()) == 1, result.err


def test_the_model_description_lists_the_limits(service):
    with TestClient(create_app(service.settings, service=service)) as client:
        limits = client.get("/v1/model").json()["limits"]
    assert limits["max_seconds"] == 3600 and limits["window_seconds"] == [0.5, 20.0] and limits["min_hop_fraction"] == 0.1
    assert json.dumps(limits)  # plain numbers, for clients to check their options before sending


def test_uploads_held_at_once_stay_within_the_budget(service, tmp_path):
    """A worker is taken only once an upload is in, so uploads in progress are bounded by bytes: past
    the budget (2 x --max-upload-mb per worker and waiting place) the next is refused with 503 at once,
    and once they end the budget is free again."""
    import asyncio

    import httpx

    small = tmp_path / "small.wav"
    sf.write(small, np.zeros(8_000, dtype=np.int16), 8_000)  # 16 KB
    settings = ServeSettings(runtime="torch", max_upload_mb=0.1, concurrency=1, queue=0)  # budget 0.2 MiB
    app = create_app(settings, service=_sharing(service, settings))
    budget = app.state.server.budget

    async def scenario() -> list[int]:
        release = asyncio.Event()

        async def held():  # noqa: ANN202 - 100 KB now, the rest when released
            yield b"\0" * 100_000
            await release.wait()
            yield b"\0" * 10

        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            slow = [asyncio.create_task(client.post("/v1/predict", content=held())) for _ in range(2)]
            for _ in range(200):
                if budget.held >= 200_000:
                    break
                await asyncio.sleep(0.01)
            refused = await client.post("/v1/predict", params={"name": "small.wav"}, content=small.read_bytes())
            release.set()
            ended = await asyncio.gather(*slow)
            again = await client.post("/v1/predict", params={"name": "small.wav"}, content=small.read_bytes())
            assert "holds 0.2 MiB of uploads already" in refused.json()["error"]
            assert refused.headers["retry-after"] == "2"
            # not audio (422), or the one worker busy with the other (503): either way, ended
            return [refused.status_code, *sorted({answer.status_code for answer in ended} - {503}), again.status_code]

    assert asyncio.run(asyncio.wait_for(scenario(), 60)) == [503, 422, 200]
    assert budget.held == 0
