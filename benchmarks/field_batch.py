"""Batch runs at field scale: workers, shards + merge, and a killed run resumed.

Two collections, as monitoring teams have them:
- `short`: a folder of 2000 short files (ESC-50's 5-second clips, read from ../shared);
- `long`: ten 1-hour 16 kHz WAV soundscapes built from ESC-50 clips (benchmarks/predict.py's
  `soundscape`, cached in --work).

For each, `audiocnn predict FOLDER --format csv --out-dir ...` runs in a fresh process with
1 and with 2 workers (same run, same machine, so their ratio is fair); wall time, audio
seconds per wall second, and the peak RSS of the whole process tree (the parent and its
workers, sampled from /proc every 0.1 s) are recorded. Then:
- shards: `--shard 1/2` and `--shard 2/2` one after the other (as two machines would), joined
  by `audiocnn merge`, compared byte for byte with one run's table;
- kill: a run is SIGKILLed from outside after `--kill-after` seconds and started again; the
  results must be every recording's, each written once, and identical to an uninterrupted run.

    .venv/bin/python benchmarks/field_batch.py --data ../shared/data/esc50 --work /work/bench-field \\
        --json benchmarks/results/field_batch.json
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from predict import soundscape  # noqa: E402 - the sibling benchmark's soundscape builder

AUDIOCNN = [sys.executable, "-m", "audiocnn"]


def tree_rss_mb(pid: int) -> float:
    """RSS of `pid` and all its descendants (MB), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        stack += children.get(current, [])
        try:
            with open(f"/proc/{current}/status") as handle:
                total += next((int(line.split()[1]) for line in handle if line.startswith("VmRSS:")), 0) / 1024
        except OSError:
            pass
    return total


def run(args: list[str], *, kill_after: float | None = None) -> dict[str, float]:
    """Run `audiocnn ARGS` in a fresh process: wall time, peak tree RSS, exit code, stderr."""
    start = time.perf_counter()
    process = subprocess.Popen([*AUDIOCNN, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_mb(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if kill_after is not None:
        try:
            process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
    _, err = process.communicate()
    done.set()
    sampler.join()
    return {"code": process.returncode, "wall_s": time.perf_counter() - start, "peak_rss_mb": peak[0],
            "stderr_tail": err.strip().splitlines()[-1] if err.strip() else ""}


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="ESC-50 root")
    parser.add_argument("--work", type=Path, required=True, help="where the long recordings and results go")
    parser.add_argument("--short-files", type=int, default=2000)
    parser.add_argument("--long-files", type=int, default=10)
    parser.add_argument("--hours", type=float, default=1.0, help="length of each long recording")
    parser.add_argument("--kill-after", type=float, default=10.0, help="seconds before the kill of the resume test")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--parts", nargs="+", choices=("workers", "shards", "kill"), default=["workers", "shards", "kill"])
    parser.add_argument("--json", type=Path, help="results file (parts not run keep their earlier results)")
    args = parser.parse_args()

    clips = sorted((args.data / "audio").glob("*.flac"))
    short = args.work / "short"
    if not short.is_dir() or len(list(short.iterdir())) != args.short_files:
        shutil.rmtree(short, ignore_errors=True)
        short.mkdir(parents=True)
        for clip in clips[: args.short_files]:
            (short / clip.name).symlink_to(clip.resolve())
    long = args.work / "long"
    long.mkdir(parents=True, exist_ok=True)
    for i in range(args.long_files):
        rotated = clips[i * 200 :] + clips[: i * 200]  # each recording starts elsewhere in ESC-50
        soundscape(rotated, args.hours, long / f"soundscape{i:02d}.wav")
    seconds = {"short": 5.0 * args.short_files, "long": 3600.0 * args.hours * args.long_files}

    results: dict[str, object] = json.loads(args.json.read_text()) if args.json and args.json.is_file() else {}
    results.update({"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "date": time.strftime("%Y-%m-%d"), "runtime": args.runtime})
    base = ["--format", "csv", "--no-progress", "--runtime", args.runtime]
    out = args.work / "out"
    if "workers" in args.parts:
        shutil.rmtree(out, ignore_errors=True)
        results["runs"] = []
    for name, folder in (("short", short), ("long", long)) if "workers" in args.parts else ():
        for workers in (1, 2):
            target = out / f"{name}-w{workers}"
            measured = run(["predict", str(folder), *base, "--out-dir", str(target), "--workers", str(workers)])
            measured.update(collection=name, workers=workers, audio_s=seconds[name],
                            audio_s_per_s=seconds[name] / measured["wall_s"])
            results["runs"].append(measured)
            print(json.dumps(measured), flush=True)
        results[f"{name}_workers_identical"] = same_tree(out / f"{name}-w1", out / f"{name}-w2")
        results[f"{name}_speedup_2_workers"] = (results["runs"][-2]["wall_s"] / results["runs"][-1]["wall_s"])

    if "shards" in args.parts:
        shards_and_merge(results, short, base, out)
    if "kill" in args.parts:
        killed_and_resumed(results, short, base, out, args.kill_after, args.short_files)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def shards_and_merge(results: dict, short: Path, base: list[str], out: Path) -> None:
    """Two shards one after the other, merged, against one run over the whole folder."""
    one = out / "short-one.csv"
    single = run(["predict", str(short), *base, "--out", str(one)])
    shard_runs = [run(["predict", str(short), *base, "--shard", f"{k}/2", "--out", str(out / f"short-shard{k}.csv")])
                  for k in (1, 2)]
    merge = run(["merge", str(out / "short-shard1.csv"), str(out / "short-shard2.csv"), "--out",
                 str(out / "short-merged.csv")])
    results["shards"] = {"single_wall_s": single["wall_s"], "shard_wall_s": [r["wall_s"] for r in shard_runs],
                         "merge_wall_s": merge["wall_s"],
                         "identical": filecmp.cmp(one, out / "short-merged.csv", shallow=False)}
    print(json.dumps(results["shards"]), flush=True)


def killed_and_resumed(results: dict, short: Path, base: list[str], out: Path, kill_after: float, n_files: int) -> None:
    """A run SIGKILLed from outside, then run again: every result once, identical to an uninterrupted run."""
    resumed = out / "short-killed"
    shutil.rmtree(resumed, ignore_errors=True)
    killed = run(["predict", str(short), *base, "--out-dir", str(resumed), "--workers", "2"], kill_after=kill_after)
    time.sleep(3.0)  # workers notice their parent is gone within a second, and exit
    orphans = [pid for pid in os.listdir("/proc") if pid.isdigit() and "spawn_main" in _cmdline(pid)]
    done_at_kill = len(list(resumed.rglob("*.audiocnn.csv")))
    again = run(["predict", str(short), *base, "--out-dir", str(resumed), "--workers", "2"])
    leftovers = [p.name for p in resumed.rglob("*.partial")]
    classified, _, rest = again["stderr_tail"].partition(" file(s) classified")
    skipped = int(rest.split(", ")[2].split()[0]) if rest.count(", ") >= 2 else 0
    results["kill"] = {"killed_code": killed["code"], "done_at_kill": done_at_kill, "resume": again["stderr_tail"],
                       "none_twice": skipped == done_at_kill and int(classified) + skipped == n_files,
                       "results": len(list(resumed.rglob("*.audiocnn.csv"))), "partials_left": len(leftovers),
                       "orphan_workers_3s_after_kill": len(orphans),
                       "identical_to_uninterrupted": same_tree(resumed, out / "short-w2")}
    print(json.dumps(results["kill"]), flush=True)


if __name__ == "__main__":
    main()
