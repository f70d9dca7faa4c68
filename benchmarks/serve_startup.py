"""Start-up of `audiocnn serve`: seconds until /healthz answers, and the process's RSS then.

A server is started `--runs` times in a row on a free 127.0.0.1 port (the bundled model unless
`--model` names another), each stopped once it answers. The first run of a bundle on a machine
may also export and check its ONNX graph; later runs show the steady start-up.

    .venv/bin/python benchmarks/serve_startup.py --runs 2 --json benchmarks/results/startup/serve.json
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def start_once(extra: list[str]) -> dict[str, float]:
    """Seconds from launch until /healthz answers, and the server's resident memory then (MB)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "audiocnn", "serve", "--port", str(port), *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.perf_counter() - started > 300:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.05)
        up = time.perf_counter() - started
        status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {"up_s": up, "rss_mb": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--model", help="a bundle folder or bundled model name (default: the bundled one)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    extra = ["--model", args.model] if args.model else []
    runs = []
    for _ in range(args.runs):
        runs.append(start_once(extra))
        print(f"up after {runs[-1]['up_s']:.2f} s, RSS {runs[-1]['rss_mb']:.0f} MB", flush=True)
    result = {"command": " ".join(sys.argv), "machine": f"{platform.machine()}", "date": time.strftime("%Y-%m-%d"),
              "runs": runs}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
