"""Per-window embeddings of recordings: what a network hears, as vectors for a head, a search or a map.

Two backbones give them (issue 31):
- `BirdNetEmbedder`: BirdNET V2.4's 1,024-d pooled features of 3 s windows at 48 kHz (an
  audio-pretrained network; model licence CC BY-NC-SA 4.0), from audio band-limited to
  `bandwidth_hz` when asked (a head trained on 16 kHz clips should hear 8 kHz of band);
- `BundleEmbedder`: a trained bundle's pre-logits (the pooled features its class layer reads).

Recordings are streamed block by block, so memory stays flat however long they are. The
results go to one Parquet table (`write_parquet`): a row per window with `path`, `start_s`,
`end_s` and `embedding` (a fixed-size list of float32), which pandas and pyarrow read; the
table's metadata names the backbone, its licence, the window and the hop. The table is written
under a temporary name and renamed when complete, so a killed run leaves none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from audiocnn import atomic, audio
from audiocnn.bundle import Bundle
from audiocnn.errors import AudioError, BundleError, OptionError
from audiocnn.features.windows import windows
from audiocnn.inference.predictor import checked_windows

#: Windows embedded per call.
BATCH = 8


class Embedder(Protocol):
    """A backbone that turns windows of `window` samples at `rate` into `dim`-d vectors."""

    name: str
    licence: str
    rate: int
    window: int
    dim: int

    def blocks(self, path: Path) -> Iterator[np.ndarray]:
        """The recording's samples at `rate`, block by block."""
        ...

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """(n, dim) vectors of (n, window) samples."""
        ...


class BirdNetEmbedder:
    """BirdNET V2.4's embeddings (`audiocnn.features.birdnet_graph`).

    Args:
        bandwidth_hz: hear nothing above this (the training data's bandwidth, e.g. 8000 for
            16 kHz clips); default: all the recording holds.
        threads: CPU threads for the interpreter.
    """

    licence = "CC BY-NC-SA 4.0 (BirdNET V2.4 model files)"

    def __init__(self, bandwidth_hz: float | None = None, threads: int | None = None) -> None:
        from audiocnn.features import birdnet_graph as birdnet

        if bandwidth_hz is not None and not 1_000 <= bandwidth_hz <= birdnet.SAMPLE_RATE / 2:
            raise OptionError("bandwidth", f"must be 1000-{birdnet.SAMPLE_RATE // 2} Hz (got {bandwidth_hz:g})")
        self.net = birdnet.BirdNet(threads)
        self.name, self.rate, self.window, self.dim = "birdnet-v2.4", birdnet.SAMPLE_RATE, birdnet.WINDOW, \
            birdnet.EMBEDDING_SIZE
        self.bandwidth_hz = bandwidth_hz

    def blocks(self, path: Path) -> Iterator[np.ndarray]:
        """Blocks at 48 kHz; with a bandwidth, read at twice it first (soxr's filter cuts the band)."""
        if self.bandwidth_hz is None:
            yield from audio.stream(path, self.rate)
            return
        import soxr

        narrow = int(round(2 * self.bandwidth_hz))
        upsampler = soxr.ResampleStream(narrow, self.rate, 1, dtype="float32")
        for block in audio.stream(path, narrow):
            yield upsampler.resample_chunk(block)
        yield upsampler.resample_chunk(np.zeros(0, np.float32), last=True)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """BirdNET's pooled features of (n, 144000) windows at 48 kHz."""
        return self.net.embed(batch)


class BundleEmbedder:
    """A trained bundle's pre-logits: the pooled features of its CNN, before the class layer."""

    def __init__(self, bundle: Bundle) -> None:
        if bundle.members:
            raise BundleError(f"{bundle.path}: an ensemble has no one embedding; embed with one of its members "
                              f"({bundle.members[0].path})")
        self.model = bundle.model.eval()
        self.name = f"bundle:{bundle.path.name}"
        self.licence = f"that of the bundle {bundle.path.name} (its model card)"
        self.rate = bundle.sample_rate
        self.window = round(bundle.clip_seconds * self.rate)
        self.dim = int(self.model.backbone.num_features)

    def blocks(self, path: Path) -> Iterator[np.ndarray]:
        """Blocks at the bundle's rate."""
        return audio.stream(path, self.rate)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """The CNN's pooled features of the windows' images."""
        import torch

        with torch.inference_mode():
            images = self.model.images(torch.from_numpy(batch))  # normalised as training fed them
            features = self.model.backbone.forward_features(images)
            return self.model.backbone.forward_head(features, pre_logits=True).float().numpy()


@dataclass
class FileEmbeddings:
    """One recording's windows (start and end, seconds) and their vectors."""

    path: Path
    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray  # (windows, dim) float32


def checked_hop(embedder: Embedder, hop_seconds: float | None) -> int:
    """The hop in samples (default a whole window), within `Predictor`'s bound: at least a tenth of
    the window, or an OptionError in its words."""
    window_seconds = embedder.window / embedder.rate
    _, hop_seconds = checked_windows(window_seconds, None, window_seconds if hop_seconds is None else hop_seconds)
    return max(1, round(hop_seconds * embedder.rate))


def embed_file(embedder: Embedder, path: Path, hop_seconds: float | None = None) -> FileEmbeddings:
    """Every window of one recording embedded (a window every `hop_seconds`, default a whole window).

    Raises:
        AudioError: the file cannot be read or holds no samples.
        OptionError: a hop shorter than a tenth of the window.
    """
    hop = checked_hop(embedder, hop_seconds)
    starts: list[int] = []
    vectors: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    total = [0]

    def counted(blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            total[0] += len(block)
            yield block

    for start, samples in windows(counted(embedder.blocks(path)), embedder.window, hop):
        starts.append(start)
        pending.append(samples)
        if len(pending) == BATCH:
            vectors.append(embedder.embed(np.stack(pending)))
            pending = []
    if pending:
        vectors.append(embedder.embed(np.stack(pending)))
    if not starts:
        raise AudioError(f"{path}: holds no samples")
    first = np.asarray(starts, dtype=np.float64)
    return FileEmbeddings(path, first / embedder.rate, np.minimum(first + embedder.window, total[0]) / embedder.rate,
                          np.concatenate(vectors).astype(np.float32))


def write_parquet(results: Iterable[FileEmbeddings], out: Path, embedder: Embedder, hop_seconds: float) -> int:
    """The embeddings as one Parquet table at `out` (written atomically); the rows written.

    Each recording is a row group, written as it comes, so memory holds one recording at a time.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("path", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64()),
                        ("embedding", pa.list_(pa.float32(), embedder.dim))],
                       metadata={"audiocnn": json.dumps({"backbone": embedder.name, "licence": embedder.licence,
                                                         "sample_rate": embedder.rate,
                                                         "window_seconds": embedder.window / embedder.rate,
                                                         "hop_seconds": hop_seconds, "dim": embedder.dim,
                                                         "bandwidth_hz": getattr(embedder, "bandwidth_hz", None)})})
    rows = 0
    with atomic.replaced(out) as partial, pq.ParquetWriter(partial, schema) as writer:
        for result in results:
            flat = pa.array(result.vectors.reshape(-1), type=pa.float32())
            table = pa.table({"path": [str(result.path)] * len(result.starts), "start_s": result.starts,
                              "end_s": result.ends,
                              "embedding": pa.FixedSizeListArray.from_arrays(flat, embedder.dim)}, schema=schema)
            writer.write_table(table)
            rows += len(result.starts)
    return rows
