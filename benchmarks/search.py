"""`audiocnn search` on a 10-hour embedding table: does a window cut from the table's own audio come back
in the top 5, and how long does a search take on 2 cores?

The audio is made from ESC-50 (read from ../shared, never copied): `--hours` of 5-minute field
recordings, each a recorder's hiss (-50 dBFS) with ESC-50 clips pasted at random places and gains
(seeded), so every window is real sound and no two recordings are alike. They are embedded once with
BirdNET V2.4 (`audiocnn embed`, 3 s windows) into a Parquet table. Each query is one window of that
audio, cut to its own file, and searched for with `audiocnn search`'s library calls: the query's
embedding, then the exact scan of the table. Reported: the share of queries whose source window is in
their top 5 (and top 1), and the scan's time (median and worst), the query's embedding apart.

    .venv/bin/python benchmarks/search.py --esc50 ../shared/data/esc50 --hours 10 \\
        --json benchmarks/results/search/s20.json
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from audiocnn import audio
from audiocnn.inference.embeddings import BirdNetEmbedder, embed_file, write_parquet
from audiocnn.inference.search import query_vector, search

sys.path.insert(0, str(Path(__file__).parent))
from records import publish  # noqa: E402 - a sibling benchmark module

RATE = 16_000
RECORDING_S = 300


def make_recordings(esc50: Path, hours: float, folder: Path, seed: int) -> list[Path]:
    """5-minute recordings of hiss with ESC-50 clips pasted in (about one every 12 s)."""
    with (esc50 / "meta" / "esc50.csv").open(newline="") as handle:
        clips = [esc50 / "audio" / row["filename"] for row in csv.DictReader(handle)]
    rng = np.random.default_rng(seed)
    paths = []
    for n in range(int(round(hours * 3600 / RECORDING_S))):
        wave = (10 ** (-50 / 20) * rng.standard_normal(RATE * RECORDING_S)).astype(np.float32)
        for at in np.sort(rng.uniform(0, RECORDING_S - 5, RECORDING_S // 12)):
            sound = audio.load(clips[int(rng.integers(len(clips)))], RATE)
            start = int(at * RATE)
            wave[start: start + len(sound)] += sound[: len(wave) - start] * 10 ** (rng.uniform(-20, 0) / 20)
        path = folder / f"field{n:03d}.wav"
        sf.write(path, np.clip(wave, -1, 1), RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--esc50", type=Path, default=Path("../shared/data/esc50"))
    parser.add_argument("--hours", type=float, default=10.0)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    embedder = BirdNetEmbedder()
    with tempfile.TemporaryDirectory(prefix="audiocnn-search-") as work:
        work = Path(work)
        started = time.perf_counter()
        recordings = make_recordings(args.esc50, args.hours, work, args.seed)
        made = time.perf_counter() - started
        index = work / "index.parquet"
        started = time.perf_counter()
        rows = write_parquet((embed_file(embedder, path) for path in recordings), index, embedder,
                             embedder.window / embedder.rate)
        embedded = time.perf_counter() - started
        rng = np.random.default_rng(args.seed + 1)
        window_s = embedder.window / embedder.rate
        found1 = found5 = 0
        scans: list[float] = []
        for q in range(args.queries):
            source = recordings[int(rng.integers(len(recordings)))]
            start = float(rng.integers(int(RECORDING_S / window_s))) * window_s  # one of the table's windows
            clip = work / f"query{q}.wav"
            sf.write(clip, audio.load(source, RATE, offset=start, duration=window_s), RATE)
            direction = query_vector(embedder, clip)
            began = time.perf_counter()
            hits = search(index, direction, 5)
            scans.append(time.perf_counter() - began)
            ranks = [i for i, h in enumerate(hits) if h.path == str(source) and abs(h.start_s - start) < 1e-6]
            found5 += bool(ranks)
            found1 += bool(ranks) and ranks[0] == 0
    record = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} cores", "hours": args.hours, "recordings": len(recordings), "rows": rows,
        "backbone": embedder.name, "queries": args.queries, "top5": found5 / args.queries, "top1": found1 / args.queries,
        "scan_median_s": float(np.median(scans)), "scan_max_s": float(np.max(scans)),
        "make_audio_s": made, "embed_s": embedded, "command": " ".join(sys.argv),
    }
    publish(record, args.json)


if __name__ == "__main__":
    main()
