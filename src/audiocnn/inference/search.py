"""`audiocnn search`: the windows of an `embed` table that sound most like a query, by cosine similarity.

The query is embedded by the backbone that made the table (its metadata names it: BirdNET V2.4 with
the same band, or a bundle's CNN, which the caller must pass), window by window with the table's
window; a query longer than one window is their mean direction. The table is read a row group at a
time and only the best `top` hits are kept, so memory holds one group and the hits, however long the
season: the search is exact, and its time grows linearly with the table (BENCHMARKS.md measures it).
A window of the query's own recording is found like any other (a user searching with a clip of a
known call wants its other occurrences; `exclude_self` leaves the query's own file out).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audiocnn.errors import ConfigError
from audiocnn.inference.embeddings import BirdNetEmbedder, Embedder, embed_file


@dataclass(frozen=True)
class Hit:
    """One window of the table and how like the query it sounds (cosine similarity, -1 to 1)."""

    path: str
    start_s: float
    end_s: float
    similarity: float


def table_metadata(index: Path) -> dict[str, Any]:
    """What `embed` wrote about its table: backbone, window, hop, dimension (a ConfigError if none)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(index).schema_arrow.metadata or {}
        return json.loads(meta[b"audiocnn"])
    except Exception as err:  # noqa: BLE001 - not Parquet, not ours, damaged: one line
        raise ConfigError(f"{index}: not an `audiocnn embed` table ({type(err).__name__}: {err})") from None


def query_embedder(metadata: dict[str, Any], bundle_embedder: Embedder | None) -> Embedder:
    """The embedder that made the table: BirdNET with the table's band, or the bundle given."""
    backbone = metadata.get("backbone", "")
    if backbone == "birdnet-v2.4":
        return BirdNetEmbedder(metadata.get("bandwidth_hz"))
    if bundle_embedder is None or bundle_embedder.name != backbone:
        raise ConfigError(f"the table was embedded by {backbone!r}: give that bundle with --model")
    return bundle_embedder


def query_vector(embedder: Embedder, query: Path) -> np.ndarray:
    """The query's direction: its windows' unit vectors averaged (a clip of the sound sought)."""
    vectors = embed_file(embedder, query).vectors
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    mean = unit.mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def search(index: Path, direction: np.ndarray, top: int, exclude: str | None = None) -> list[Hit]:
    """The `top` windows of the table most like `direction`, best first (`exclude`: a path left out)."""
    import pyarrow.parquet as pq

    table = pq.ParquetFile(index)
    best_scores = np.empty(0, np.float32)
    best: list[tuple[str, float, float]] = []
    for group in range(table.num_row_groups):
        rows = table.read_row_group(group)
        vectors = np.stack(rows.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float32)
        scores = vectors @ direction / np.maximum(np.linalg.norm(vectors, axis=1), 1e-12)
        paths = rows.column("path").to_pylist()
        if exclude is not None:  # the same file, however the table and the caller wrote its path
            scores[[p == exclude or Path(p).resolve() == Path(exclude).resolve() for p in paths]] = -np.inf
        starts, ends = rows.column("start_s").to_numpy(), rows.column("end_s").to_numpy()
        keep = np.argsort(-scores, kind="stable")[:top]
        best_scores = np.concatenate([best_scores, scores[keep]])
        best += [(paths[i], float(starts[i]), float(ends[i])) for i in keep]
        order = np.argsort(-best_scores, kind="stable")[:top]
        best_scores, best = best_scores[order], [best[i] for i in order]
    return [Hit(path, start, end, float(score)) for (path, start, end), score in zip(best, best_scores)
            if np.isfinite(score)]
