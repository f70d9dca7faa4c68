"""Review sessions, kept on disk so that a reload or a server restart loses no verdict.

A review is made from a kept result (`/v1/results/ID/review`): a queue of its detections
(`inference.review_queue`) and a copy of the recordings they are in, so that the review
outlives the result, which goes after `--keep-minutes` or when the server stops. Each verdict
(accepted, rejected, or relabelled with another label) is written at once, atomically, into the
review's `review.json`. The export is what `audiocnn train` reads as its `annotations` dataset: the
recordings, each with a Raven selection table named after it.

Layout under the server's `--reviews` folder (by default the user's data folder, not the server's
temporary one, which goes when it stops):

    <id>/review.json            the queue and every verdict (written last when the review is made)
    <id>/recordings/0000.wav    the recordings, stored under the server's names (uploads.py)

A review is made in `.<id>.<pid>.partial` and renamed to `<id>` once complete, so a server killed
while making one leaves no half review; a server starting removes the leftovers of servers that are gone. The folder is bounded
by `--reviews-mb`: a review that would pass it is refused (507) until older ones are deleted.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf

from audiocnn import atomic, audio
from audiocnn.inference.review_queue import Candidate
from audiocnn.inference.snippets import fitted, label_folder
from audiocnn.serve.uploads import Upload
from audiocnn.tabletext import RAVEN_COLUMNS, raven_cells

try:
    import fcntl
except ImportError:  # Windows: verdicts are still atomic, but two servers may race on one review
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("audiocnn.serve")
Verdict = Literal["accepted", "rejected", "relabelled"]
#: What a rejected detection is exported as, unless told otherwise: a sound the model was wrong
#: about, which is none of its labels (the annotations dataset's name for clips of no label).
REJECTED_LABEL = "background"
#: The longest snippet played for one detection: a merged detection may span an hour of rain.
MAX_SNIPPET_S = 30.0
_TABLE = ".Table.1.selections.txt"
_PARTIAL = ".partial"
#: What `secrets.token_urlsafe` makes: anything else is no review (and no path out of the folder).
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class UnknownReview(LookupError):
    """No review has this id (never made, or deleted)."""


class BrokenReview(Exception):
    """A review folder whose review.json cannot be read as a review (edited by hand, another program's)."""


class NoRoomForReview(Exception):
    """Keeping this review's recordings would pass the reviews folder's byte bound."""


@dataclass
class ReviewItem:
    """One queued detection and what the reviewer said of it (None: not yet reviewed)."""

    recording: int
    start_s: float
    end_s: float
    label: str
    confidence: float
    verdict: Verdict | None = None
    new_label: str | None = None  # for `relabelled`: what the sound is


@dataclass
class Review:
    """A review session: its recordings (shown names, stored files), its queue, and how it was made."""

    id: str
    created: float
    model: str
    labels: list[str]
    queue: dict[str, Any]  # how the queue was drawn: kind, per_label, seed, top_k, min_confidence
    recordings: list[dict[str, Any]]  # {"name": shown name, "file": stored name, "duration_s"}
    items: list[ReviewItem] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What a list of reviews shows: when, how many, how many reviewed."""
        done = sum(item.verdict is not None for item in self.items)
        return {"id": self.id, "created": self.created, "model": self.model, "items": len(self.items),
                "reviewed": done, "recordings": len(self.recordings), "queue": self.queue}

    def item(self, index: int) -> ReviewItem:
        """Item `index` of the queue; IndexError (worded for the API) when there is none."""
        if not 0 <= index < len(self.items):
            raise IndexError(f"item: the review holds {len(self.items)} detections, numbered from 0 (got {index})")
        return self.items[index]

    def as_json(self) -> dict[str, Any]:
        """The whole review, as the API answers it and as review.json holds it."""
        return {**asdict(self), "reviewed": sum(item.verdict is not None for item in self.items)}


class ReviewStore:
    """The reviews under one folder, at most `max_bytes` of recordings together.

    Nothing is cached: every call reads review.json, so servers sharing the folder (the default one
    is per user) see each other's verdicts, and a verdict is read, changed and written under a lock
    on its review (`flock`, which the kernel drops with the process), never from a stale copy."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = Path(folder), max_bytes  # the folder is made with the first review
        for leftover in self.folder.glob(f".*{_PARTIAL}"):  # a review being made when its server was killed
            pid = leftover.name.removesuffix(_PARTIAL).rsplit(".", 1)[-1]
            if pid.isdigit() and not atomic.alive(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True)
        self._lock = threading.Lock()  # this server's reviews are made one at a time: the byte bound holds

    def create(self, uploads: list[Upload], durations: list[float], queue: list[Candidate], *, model: str,
               labels: list[str], how: dict[str, Any]) -> Review:
        """A new review of `queue` (detections of `uploads`), its recordings copied in; NoRoomForReview
        when they would pass the byte bound."""
        used = sorted({c.recording for c in queue})
        review_id = secrets.token_urlsafe(16)
        number = {old: new for new, old in enumerate(used)}
        recordings = [{"name": uploads[i].name, "file": f"{n:04d}{uploads[i].path.suffix}",
                       "duration_s": round(durations[i], 3)} for n, i in enumerate(used)]
        items = [ReviewItem(number[c.recording], round(c.detection.start, 3), round(c.detection.end, 3),
                            c.detection.label, round(float(c.detection.confidence or 0.0), 4)) for c in queue]
        review = Review(review_id, time.time(), model, list(labels), how, recordings, items)
        with self._lock:
            size, held = sum(uploads[i].path.stat().st_size for i in used), self.bytes_used()
            if size + held > self.max_bytes:
                raise NoRoomForReview(f"the reviews hold {held / 2**20:.1f} MB and this one needs "
                                      f"{size / 2**20:.1f} MB more, past --reviews-mb ({self.max_bytes / 2**20:g} MB): "
                                      "delete reviews that are done")
            making = self.folder / f".{review_id}.{os.getpid()}{_PARTIAL}"
            (making / "recordings").mkdir(parents=True)
            try:
                for i, recording in zip(used, recordings):
                    shutil.copyfile(uploads[i].path, making / "recordings" / recording["file"])
                atomic.write_text(making / "review.json", json.dumps(review.as_json()))
                making.rename(self.folder / review_id)
            finally:
                shutil.rmtree(making, ignore_errors=True)
        return review

    def get(self, review_id: str) -> Review:
        """The review `review_id` as saved; UnknownReview when there is none."""
        return self._loaded(review_id)

    def judge(self, review_id: str, index: int, verdict: Verdict | None, new_label: str | None) -> ReviewItem:
        """Record a verdict on item `index` (None takes it back), written to disk before this returns."""
        with self._locked(review_id):
            review = self._loaded(review_id)
            item = review.item(index)
            item.verdict, item.new_label = verdict, new_label if verdict == "relabelled" else None
            path = self.folder / review_id / "review.json"
            atomic.remove_stale_partials(path)  # a verdict being written when a server was killed
            atomic.write_text(path, json.dumps(review.as_json()))
            return item

    def reviews(self) -> list[Review]:
        """Every review, the newest first."""
        found = []
        for path in self.folder.iterdir() if self.folder.is_dir() else ():
            if _ID.fullmatch(path.name) and (path / "review.json").is_file():
                try:
                    found.append(self._loaded(path.name))
                except (BrokenReview, UnknownReview) as err:  # one bad (or just deleted) folder hides no other
                    log.warning("%s", err)
        return sorted(found, key=lambda r: -r.created)

    def delete(self, review_id: str) -> None:
        """Delete a review and its recordings; UnknownReview when there is none."""
        with self._locked(review_id):
            self._loaded(review_id)
            shutil.rmtree(self.folder / review_id, ignore_errors=True)

    @contextlib.contextmanager
    def _locked(self, review_id: str) -> Iterator[None]:
        """This review held by this thread alone, across processes too (where the system has flock)."""
        if not _ID.fullmatch(review_id) or not (self.folder / review_id).is_dir():
            raise UnknownReview(review_id)
        with self._lock:
            handle = os.open(self.folder / review_id / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if fcntl is not None:
                    fcntl.flock(handle, fcntl.LOCK_EX)
                yield
            finally:
                os.close(handle)

    def bytes_used(self) -> int:
        """Bytes the reviews hold: their recordings and records."""
        return sum(p.stat().st_size for pattern in ("*/recordings/*", "*/review.json") for p in self.folder.glob(pattern)
                   if p.is_file())

    def snippet(self, review_id: str, index: int, pad_s: float) -> bytes:
        """One item's audio, `pad_s` seconds either side (at most `MAX_SNIPPET_S` in all), as a WAV file."""
        review = self.get(review_id)
        item = review.item(index)
        path = self.folder / review_id / "recordings" / review.recordings[item.recording]["file"]
        start = max(0.0, item.start_s - pad_s)
        rate = audio.info(path).sample_rate
        samples = audio.load(path, offset=start, duration=min(item.end_s + pad_s - start, MAX_SNIPPET_S))
        out = io.BytesIO()
        sf.write(out, np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
        return out.getvalue()

    def export(self, review_id: str, target: Path, rejected_as: str | None = REJECTED_LABEL) -> None:
        """Write the reviewed detections as an `annotations` dataset, zipped, to `target` (a file, not
        memory: the recordings may be gigabytes): each recording with at least one verdict, beside its
        Raven table of accepted and relabelled detections (rejected ones labelled `rejected_as`, or left
        out when it is None). Items not yet reviewed are left out."""
        review = self.get(review_id)
        names = _file_names(review)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
            for number, recording in enumerate(review.recordings):
                rows = _selections([item for item in review.items if item.recording == number], rejected_as)
                if not rows:
                    continue
                stem, suffix = names[number]
                archive.write(self.folder / review_id / "recordings" / recording["file"], f"reviewed/{stem}{suffix}")
                lines = ["\t".join(RAVEN_COLUMNS)] + ["\t".join(raven_cells(n, begin, end, stem + suffix, label, confidence))
                                                      for n, (begin, end, label, confidence) in enumerate(rows, 1)]
                archive.writestr(f"reviewed/{stem}{_TABLE}", "\n".join(lines) + "\n")

    def _loaded(self, review_id: str) -> Review:
        """The review as its review.json holds it."""
        path = self.folder / review_id / "review.json"
        try:
            if not _ID.fullmatch(review_id):
                raise FileNotFoundError(review_id)
            text = path.read_text()
        except OSError:  # never made, or deleted (by another server too)
            raise UnknownReview(review_id) from None
        try:
            data = json.loads(text)
            data.pop("reviewed", None)
            review = Review(**{**data, "items": [ReviewItem(**item) for item in data["items"]]})
        except Exception as err:  # noqa: BLE001 - anything in a file someone else may have written
            raise BrokenReview(f"{path}: not a review audiocnn wrote ({type(err).__name__}: {err})") from None
        return review


def _selections(items: list[ReviewItem], rejected_as: str | None) -> list[tuple[float, float, str, float]]:
    """One recording's reviewed items as selections (begin, end, label, the model's confidence), by time.

    A rejected detection becomes a `rejected_as` selection only where no accepted or relabelled one
    overlaps it: with several labels per window, "not a dog" over a stretch that is "a cat" is no
    background clip. The same stretch and label is listed once."""
    kept = [(i.start_s, i.end_s, i.label if i.verdict == "accepted" else str(i.new_label), i.confidence)
            for i in items if i.verdict in ("accepted", "relabelled")]
    if rejected_as is not None:
        kept += [(i.start_s, i.end_s, rejected_as, i.confidence) for i in items if i.verdict == "rejected"
                 and not any(begin < i.end_s and i.start_s < end for begin, end, _, _ in kept)]
    unique: dict[tuple[float, float, str], tuple[float, float, str, float]] = {}
    for row in kept:
        unique.setdefault(row[:3], row)
    return sorted(unique.values())


def _file_names(review: Review) -> list[tuple[str, str]]:
    """(stem, suffix) of each recording in the export: its shown name made safe, unique, and short enough
    that its table's name fits too."""
    taken: set[str] = set()
    names = []
    for number, recording in enumerate(review.recordings):
        suffix = Path(recording["file"]).suffix
        stem = label_folder(recording["name"])
        stem = stem[: -len(suffix)] if suffix and stem.lower().endswith(suffix) else stem
        candidate, n = stem, number + 1
        while fitted(candidate, _TABLE).lower() in taken:  # two recordings sent with one name
            candidate, n = f"{n}-{stem}", n + len(review.recordings)
        stem = fitted(candidate, _TABLE)[: -len(_TABLE)]
        taken.add(stem.lower() + _TABLE.lower())
        names.append((stem, suffix))
    return names
