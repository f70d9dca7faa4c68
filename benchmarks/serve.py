"""Load on `audiocnn serve`: throughput against the CLI's, latency, errors, memory over a soak.

On loopback, against a real server process (`audiocnn serve --runtime int8` by default), with
the bundled model:

1. **The CLI's throughput** on the same recordings, in this process before the server starts
   (the library `audiocnn predict` runs, without its start-up): the figure the server is held to;
   and the `audiocnn predict` *process* a user would run on the same clips (start-up included),
   timed before and after the server's levels, interleaved with them in one run.
2. **1, 4 and 16 concurrent clients** posting 5-second ESC-50 clips (multipart, one file per
   request): audio-seconds classified per second, p50/p99 latency, 503s (their share: a full
   server's answer, counted apart) and other errors. Every `--bad-every`-th request is a bad
   upload (empty, text, truncated WAV, NaN samples), which must be answered 4xx; any other
   non-200 is an error.
3. **Long files**: `--long` recordings of 10 minutes each, posted one after another.
4. **Soak** (`--soak-seconds` 0: none): 4 clients for `--soak-seconds`, bad uploads mixed in, the server's RSS sampled
   every second (from /proc): its start, peak and end, and its growth over the second half.

Bounded in requests (`--requests` per level) and time (`--soak-seconds`); everything is on
127.0.0.1. Needs a quiet machine: the ratio to the CLI is measured in the same run.

    .venv/bin/python benchmarks/serve.py --data ../shared/data/esc50 --json benchmarks/results/serve.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

RATE = 16_000


def clips(data: Path, n: int) -> list[Path]:
    """`n` ESC-50 clips, a fixed spread over classes and folds."""
    every = sorted((data / "audio").glob("*.flac")) or sorted((data / "audio").glob("*.wav"))
    return every[:: max(1, len(every) // n)][:n]


def bad_uploads() -> list[tuple[str, bytes]]:
    truncated = io.BytesIO()
    sf.write(truncated, np.zeros(RATE, np.float32), RATE, format="WAV", subtype="PCM_16")
    nan = io.BytesIO()
    sf.write(nan, np.full(RATE, np.nan, np.float32), RATE, format="WAV", subtype="FLOAT")
    return [("empty.wav", b""), ("notes.wav", b"this is not audio\n" * 50),
            ("cut.wav", truncated.getvalue()[:5000]), ("nan.wav", nan.getvalue())]


def cli_throughput(paths: list[Path], runtime: str) -> dict[str, float]:
    """Audio-seconds per second of the library `audiocnn predict` runs, model already loaded."""
    from audiocnn import bundle
    from audiocnn.bundled import default_model
    from audiocnn.inference.options import PredictOptions
    from audiocnn.inference.predictor import Predictor

    predictor = Predictor(bundle.load(default_model()), PredictOptions(runtime=runtime))
    predictor.predict(paths[0])  # warm-up
    start = time.perf_counter()
    seconds = sum(predictor.predict(path).duration for path in paths)
    wall = time.perf_counter() - start
    return {"audio_s": seconds, "wall_s": wall, "audio_s_per_s": seconds / wall}


def cli_process(paths: list[Path], runtime: str) -> dict[str, float]:
    """`audiocnn predict` as a user runs it on these files: one process, start-up included."""
    seconds = sum(sf.info(path).duration for path in paths)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "audiocnn", "predict", *map(str, paths), "--runtime", runtime,
                    "--format", "csv", "--out", os.devnull, "--no-progress"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return {"audio_s": seconds, "wall_s": wall, "audio_s_per_s": seconds / wall}


class Server:
    def __init__(self, runtime: str, concurrency: int, queue: int | None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "AUDIOCNN_API_KEY"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "audiocnn", "serve", "--port", str(self.port), "--runtime", runtime,
             "--concurrency", str(concurrency), *(["--queue", str(queue)] if queue is not None else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.25)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)


class Load:
    """`clients` threads posting clips (and every `bad_every`-th request a bad upload) until `requests`
    are done or `seconds` have passed."""

    def __init__(self, url: str, good: list[tuple[str, bytes, float]], bad: list[tuple[str, bytes]],
                 bad_every: int) -> None:
        self.url, self.good, self.bad, self.bad_every = url, good, bad, bad_every
        self.lock = threading.Lock()
        self.sent = 0
        self.latencies: list[float] = []
        self.audio_s = 0.0
        self.errors: list[str] = []
        self.busy = 0  # 503: every worker and waiting place taken
        self.bad_answers: dict[int, int] = {}

    def _next(self) -> int | None:
        with self.lock:
            if self.sent >= self.limit or time.monotonic() > self.deadline:
                return None
            self.sent += 1
            return self.sent

    def _client(self) -> None:
        with httpx.Client(timeout=600) as client:
            while (n := self._next()) is not None:
                if self.bad_every and n % self.bad_every == 0:
                    name, body = self.bad[n // self.bad_every % len(self.bad)]
                    status = client.post(f"{self.url}/v1/predict", files={"file": (name, body)}).status_code
                    with self.lock:
                        self.bad_answers[status] = self.bad_answers.get(status, 0) + 1
                    continue
                name, body, seconds = self.good[n % len(self.good)]
                start = time.perf_counter()
                answer = client.post(f"{self.url}/v1/predict", files={"file": (name, body)})
                took = time.perf_counter() - start
                with self.lock:
                    if answer.status_code == 200:
                        self.latencies.append(took)
                        self.audio_s += seconds
                    elif answer.status_code == 503:
                        self.busy += 1
                    else:
                        self.errors.append(f"{answer.status_code} {answer.text[:200]}")

    def run(self, clients: int, requests: int, seconds: float = 1e9) -> dict[str, object]:
        self.limit, self.deadline = requests, time.monotonic() + seconds
        threads = [threading.Thread(target=self._client) for _ in range(clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        latencies = np.array(self.latencies) * 1000
        return {"clients": clients, "requests": self.sent, "ok": len(self.latencies), "wall_s": wall,
                "audio_s_per_s": self.audio_s / wall,
                "p50_ms": float(np.percentile(latencies, 50)) if len(latencies) else None,
                "p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else None,
                "busy_503": self.busy, "busy_503_share": self.busy / max(1, len(self.latencies) + self.busy),
                "errors": len(self.errors), "first_errors": self.errors[:3],
                "bad_uploads": sum(self.bad_answers.values()),
                "bad_uploads_4xx": sum(v for k, v in self.bad_answers.items() if 400 <= k < 500)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/esc50"))
    parser.add_argument("--runtime", default="int8")
    parser.add_argument("--concurrency", type=int, default=2, help="server workers (default 2: the cores)")
    parser.add_argument("--queue", type=int, help="server queue (default: the server's own)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=200, help="requests per client level")
    parser.add_argument("--bad-every", type=int, default=10, help="every Nth request is a bad upload (0: none)")
    parser.add_argument("--long", type=int, default=3, help="10-minute files posted one after another")
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    paths = clips(args.data, 64)
    good = [(p.name, p.read_bytes(), sf.info(p).duration) for p in paths]
    bad = bad_uploads()
    result: dict[str, object] = {
        "command": " ".join(sys.argv), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"), "runtime": args.runtime, "server_concurrency": args.concurrency,
        "server_queue": args.queue if args.queue is not None else "the server default"}
    with tempfile.TemporaryDirectory() as tmp:
        long_files = []
        rng = np.random.default_rng(0)
        for i in range(args.long):
            path = Path(tmp) / f"long-{i}.flac"
            order = rng.permutation(len(paths))
            pieces = [sf.read(paths[j % len(paths)], dtype="float32")[0] for j in np.resize(order, 120)]
            sf.write(path, np.concatenate(pieces)[: 600 * RATE], RATE)
            long_files.append(path)
        print("the CLI (library, model loaded) ...", flush=True)
        result["cli_clips"] = cli_throughput(paths, args.runtime)
        if long_files:
            result["cli_long"] = cli_throughput(long_files, args.runtime)
        print("the CLI process ...", flush=True)
        result["cli_process_before"] = cli_process(paths, args.runtime)
        server = Server(args.runtime, args.concurrency, args.queue)
        try:
            Load(server.url, good, bad, 0).run(2, 8)  # warm-up
            levels = []
            for clients in args.clients:
                print(f"{clients} client(s) ...", flush=True)
                levels.append(Load(server.url, good, bad, args.bad_every).run(clients, args.requests))
                levels[-1]["vs_cli"] = levels[-1]["audio_s_per_s"] / result["cli_clips"]["audio_s_per_s"]
            result["levels"] = levels
            if long_files:
                print("long files ...", flush=True)
                long_good = [(p.name, p.read_bytes(), sf.info(p).duration) for p in long_files]
                level = Load(server.url, long_good, bad, 0).run(1, len(long_files))
                level["vs_cli"] = level["audio_s_per_s"] / result["cli_long"]["audio_s_per_s"]
                result["long"] = level
            if args.soak_seconds <= 0:
                return
            print(f"soak, {args.soak_seconds:g} s ...", flush=True)
            samples: list[tuple[float, float]] = []
            stop = threading.Event()

            def sample() -> None:
                start = time.monotonic()
                while not stop.wait(1.0):
                    samples.append((time.monotonic() - start, server.rss_mb()))

            sampler = threading.Thread(target=sample)
            sampler.start()
            soak = Load(server.url, good, bad, args.bad_every).run(4, 10**9, args.soak_seconds)
            stop.set()
            sampler.join()
            times, rss = np.array(samples).T
            half = times >= times[-1] / 2
            slope = float(np.polyfit(times[half] / 60, rss[half], 1)[0]) if half.sum() > 2 else float("nan")
            soak.update(rss_start_mb=float(rss[0]), rss_peak_mb=float(rss.max()), rss_end_mb=float(rss[-1]),
                        rss_growth_mb_per_min_second_half=slope)
            result["soak"] = soak
        finally:
            server.stop()
            print("the CLI process again ...", flush=True)
            result["cli_process_after"] = cli_process(paths, args.runtime)
            _report(result, args.json)


def _report(result: dict[str, object], out: Path | None) -> None:
    print(json.dumps(result, indent=2))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
