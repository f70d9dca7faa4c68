"""Download the official dataset archives: resumable, checksum-verified, safely extracted.

Why this exists: the public datasets are several GB, hosted on servers that drop
connections, and a silently truncated or swapped archive produces a dataset that loads
but gives wrong numbers. So every download

* goes to ``<file>.part`` first and resumes from it with an HTTP ``Range`` request;
* gives up (keeping the ``.part`` to resume) when the server sends nothing for `timeout`
  seconds, or less than `min_rate` bytes a second over `rate_window` seconds: a server
  that trickles a byte now and then would otherwise hold the command forever;
* becomes ``<file>`` only once its checksum matches a value published by someone else
  (a bad file is deleted, and the error shows expected and actual hashes);
* is extracted only after every member of the archive has been checked to stay inside
  the destination (no absolute paths, no ``..``, no links pointing outside).

This module is the network part and the orchestration; what to fetch is in
:mod:`~audiocnn.datasets.sources`, checksums and extraction in
:mod:`~audiocnn.datasets.archives` (all re-exported here). Only the standard library
(urllib, hashlib) and tqdm are used. Every failure is a
:class:`~audiocnn.errors.DownloadError` whose message names the URL or file and the
problem, so the CLI can print it as one line.

Layout produced by :func:`fetch_dataset` under ``root``::

    root/.downloads/<archive>           archives while they are needed (kept with keep_archives)
    root/.downloads/<archive>.done      stamp: this archive was verified and fully extracted
    root/<extracted files>              e.g. root/meta/esc50.csv, root/genres/blues/...
    root/<filename>                     plain files (``extract=False``), e.g. root/splits/*.txt
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from audiocnn.datasets.archives import (
    CHUNK,
    check_digest,
    escapes,
    extract,
    hash_file,
    parse_checksum,
    verify_checksum,
)
from audiocnn.datasets.sources import SOURCES, Archive
from audiocnn.errors import DownloadError

__all__ = [
    "Archive",
    "SOURCES",
    "download_file",
    "extract",
    "fetch_dataset",
    "verify_checksum",
]

_DOWNLOADS = ".downloads"
#: The slowest download accepted: 1 KiB/s over a minute (ESC-50 at that rate takes a week;
#: anything slower is a stalled or hostile server).
MIN_RATE = 1024.0
RATE_WINDOW = 60.0


@dataclasses.dataclass(frozen=True)
class Pace:
    """How long to wait for a server: for any data (`timeout`) and for enough of it (`min_rate`
    bytes a second, measured over `window` seconds)."""

    timeout: float = 60.0
    min_rate: float = MIN_RATE
    window: float = RATE_WINDOW
_USER_AGENT = "audiocnn/0.1 (dataset download)"


def _make_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"{path}: cannot create folder ({e.strerror or e})") from None


# ---------------------------------------------------------------------------- download


class _HTTPStatusError(DownloadError):
    """An HTTP error answer; the status is kept so a stale resume (416) can start over."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _open(url: str, offset: int, pace: Pace) -> http.client.HTTPResponse:
    """Open `url`, asking for bytes from `offset` on; network failures become DownloadError."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=pace.timeout)  # noqa: S310 (http/https by design)
    except urllib.error.HTTPError as e:
        e.close()
        raise _HTTPStatusError(f"{url}: HTTP {e.code} {e.reason}", e.code) from None
    except urllib.error.URLError as e:
        reason = getattr(e.reason, "strerror", None) or e.reason
        raise DownloadError(f"{url}: cannot connect ({reason})") from None
    except TimeoutError:
        raise DownloadError(f"{url}: no answer within {pace.timeout:g} s") from None
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise DownloadError(f"{url}: cannot download ({e})") from None


def _resume_start(response: http.client.HTTPResponse) -> int | None:
    """First byte a 206 answer carries (from ``Content-Range: bytes N-M/T``), None if unreadable."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _content_length(response: http.client.HTTPResponse) -> int | None:
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, TypeError, ValueError):
        return None  # e.g. GitHub's generated archives are streamed without a length


def _read_chunks(response: http.client.HTTPResponse, url: str, pace: Pace) -> Iterator[bytes]:
    """Yield the body as it arrives; a dropped, silent or too slow connection keeps the .part
    for a later resume. `read1` returns what one receive brings, so the rate is measured even
    when a server sends a byte at a time (`read` would wait to fill a whole chunk)."""
    window_start, window_bytes = time.monotonic(), 0
    while True:
        try:
            chunk = response.read1(CHUNK)
        except TimeoutError:
            raise DownloadError(f"{url}: no data for {pace.timeout:g} s; run again to resume") from None
        except (OSError, http.client.HTTPException) as e:
            raise DownloadError(f"{url}: connection lost ({e}); run again to resume") from None
        if not chunk:
            return
        yield chunk
        window_bytes += len(chunk)
        elapsed = time.monotonic() - window_start
        if elapsed >= pace.window:
            if window_bytes < pace.min_rate * elapsed:
                raise DownloadError(f"{url}: too slow, {window_bytes} bytes in {elapsed:.0f} s (at least "
                                    f"{pace.min_rate:g} bytes/s needed); run again to resume")
            window_start, window_bytes = time.monotonic(), 0


def _progress_bar(name: str, total: int | None, initial: int, progress: bool) -> tqdm:
    # disable=None lets tqdm hide the bar when stderr is not a terminal (logs, CI), where
    # hundreds of carriage-return updates would only be noise.
    return tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=name,
        disable=None if progress else True,
    )


def _restart(url: str, part: Path, algo: str | None, progress: bool, pace: Pace) -> str | None:
    """Throw away a .part the server cannot continue and download from the first byte."""
    part.unlink(missing_ok=True)
    return _stream(url, part, algo, progress, pace)


def _stream(url: str, part: Path, algo: str | None, progress: bool, pace: Pace) -> str | None:
    """Download `url` into `part` (resuming it when possible); return the hex digest of all of it."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, pace)
    except _HTTPStatusError as e:
        if e.code == 416 and offset:  # "range not satisfiable": the .part is stale or oversized
            return _restart(url, part, algo, progress, pace)
        raise
    with response:
        if response.status == 206:
            if not offset or _resume_start(response) != offset:
                if not offset:
                    raise DownloadError(f"{url}: partial answer (HTTP 206) to a request for the whole file")
                response.close()
                return _restart(url, part, algo, progress, pace)
            mode = "ab"
        elif response.status == 200:
            offset, mode = 0, "wb"  # the whole file: a server that ignores ranges starts over
        else:
            raise DownloadError(f"{url}: unexpected HTTP {response.status} {response.reason}")
        length = _content_length(response)
        hasher = hashlib.new(algo) if algo else None
        if hasher and offset:
            hash_file(part, hasher.name, hasher)
        bar = _progress_bar(part.name[: -len(".part")], None if length is None else offset + length, offset, progress)
        received = _write(response, part, mode, hasher, url, pace, bar)
    if length is not None and received < length:
        raise DownloadError(
            f"{url}: connection closed after {offset + received} of {offset + length} bytes; run again to resume"
        )
    return hasher.hexdigest() if hasher else None


def _write(response: http.client.HTTPResponse, part: Path, mode: str, hasher: hashlib._Hash | None, url: str,
           pace: Pace, bar: tqdm) -> int:
    """Copy the body to `part`, hashing as it goes; disk errors name the file, not the URL."""
    received = 0
    try:
        with bar, open(part, mode) as out:
            for chunk in _read_chunks(response, url, pace):
                out.write(chunk)
                if hasher:
                    hasher.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    except OSError as e:
        raise DownloadError(f"{part}: cannot write ({e.strerror or e})") from None
    return received


def download_file(
    url: str, dest: Path, checksum: str | None, *, progress: bool = True, timeout: float = 60.0,
    min_rate: float = MIN_RATE, rate_window: float = RATE_WINDOW,
) -> Path:
    """Download `url` to `dest` and return `dest`, verified when a checksum is given.

    Bytes go to ``dest + ".part"``; an existing ``.part`` is resumed with
    ``Range: bytes=N-`` (a 206 answer is appended, a 200 answer means the server ignores
    ranges and the file starts over). `dest` appears only after the checksum matches, so
    a `dest` that exists is complete: with a matching checksum it is not downloaded
    again. On a mismatch the bad file is deleted and the error shows expected and actual
    hashes. ``checksum=None`` downloads without verifying, with a warning.
    """
    dest = Path(dest)
    algo, expected = parse_checksum(checksum) if checksum else (None, None)
    # A dest is only ever renamed into place once complete: without a checksum nothing to verify against.
    if dest.is_file() and (algo is None or hash_file(dest, algo).hexdigest() == expected):
        return dest
    part = dest.with_name(dest.name + ".part")
    _make_folder(dest.parent)
    actual = _stream(url, part, algo, progress, Pace(timeout, min_rate, rate_window))
    if algo and expected:
        try:
            check_digest(dest, algo, expected, actual or "", source=url)
        except DownloadError:
            part.unlink(missing_ok=True)
            raise
    else:
        warnings.warn(f"{url}: no published checksum, the file cannot be verified", UserWarning, stacklevel=2)
    try:
        os.replace(part, dest)
    except OSError as e:
        raise DownloadError(f"{dest}: cannot move the finished download into place ({e.strerror or e})") from None
    return dest


# --------------------------------------------------------------------------- datasets


def _archives(name: str, url: str | None, checksum: str | None) -> list[Archive]:
    """The archives for `name`, the first one pointed at a mirror when `url`/`checksum` are given."""
    if name not in SOURCES:
        raise DownloadError(f"unknown dataset {name!r} for download (choose from: {', '.join(SOURCES)})")
    archives = list(SOURCES[name])
    if url is not None or checksum is not None:
        mirror = {key: value for key, value in (("url", url), ("checksum", checksum)) if value is not None}
        archives[0] = dataclasses.replace(archives[0], **mirror)
    for item in archives:
        if item.checksum:
            parse_checksum(item.checksum)  # a bad override fails before any byte is fetched
        if escapes(item.filename):
            raise DownloadError(f"{name}: file name {item.filename!r} would be written outside the dataset root")
    return archives


def _stamp(downloads: Path, item: Archive) -> Path:
    return downloads / f"{Path(item.filename).name}.done"


def _stamp_text(item: Archive) -> str:
    # The checksum identifies the content whatever mirror served it; without one, the URL does.
    key = {"checksum": item.checksum} if item.checksum else {"url": item.url}
    return json.dumps({**key, "strip_components": item.strip_components}, sort_keys=True)


def _is_extracted(downloads: Path, item: Archive) -> bool:
    stamp = _stamp(downloads, item)
    try:
        return stamp.read_text() == _stamp_text(item)
    except OSError:
        return False


def _fetch_archive(item: Archive, root: Path, downloads: Path, progress: bool, keep_archives: bool) -> None:
    if _is_extracted(downloads, item):
        return  # already verified and extracted: nothing expensive on a second run
    path = download_file(item.url, downloads / item.filename, item.checksum, progress=progress)
    extract(path, root, item.strip_components)
    try:
        _stamp(downloads, item).write_text(_stamp_text(item))
        if not keep_archives:
            path.unlink()
    except OSError as e:
        raise DownloadError(f"{downloads}: cannot record the finished download ({e.strerror or e})") from None


def fetch_dataset(
    name: str,
    root: Path,
    *,
    url: str | None = None,
    checksum: str | None = None,
    progress: bool = True,
    keep_archives: bool = False,
) -> Path:
    """Download and extract dataset `name` (a key of :data:`SOURCES`) into `root`; return `root`.

    Archives are downloaded into ``root/.downloads`` and extracted into `root` (deleted
    afterwards unless `keep_archives`); plain files go to ``root/<filename>``. `url` and
    `checksum` replace those of the first archive, for mirrors and tests; with only `url`
    given, the official checksum still applies, so a mirror must serve identical bytes.
    Idempotent: an archive already extracted (its ``.downloads/<archive>.done`` stamp; delete
    it to force a new download) or a plain file whose checksum matches is not fetched
    again; an interrupted download resumes.
    """
    archives = _archives(name, url, checksum)
    root = Path(root).expanduser()
    downloads = root / _DOWNLOADS
    _make_folder(downloads)
    for item in archives:
        if item.extract:
            _fetch_archive(item, root, downloads, progress, keep_archives)
        else:
            download_file(item.url, root / item.filename, item.checksum, progress=progress)
    return root
