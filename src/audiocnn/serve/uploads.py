"""Uploads into temporary files: streamed, named by the server, always deleted, even after a kill.

Nothing a client sends is used as a path here: a file is stored as `NNNN<suffix>` in a fresh
private folder per request, where the suffix is kept only when it is a plain extension
(decoders look at it), and the client's name is only text shown back in the results.

Every request's folder lies inside the server's own folder (`ServerFolder`,
`audiocnn-serve-PID-…` in the system's temporary folder), which is removed when the server
stops. A server killed with SIGKILL cannot remove it, so each server, as it starts, removes
the folders of servers that are gone: a live server holds a lock on its folder (`flock`, which
the kernel drops when the process dies, so a reused PID cannot fool it).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no flock; a killed server's folder stays for the system to clean
    fcntl = None  # type: ignore[assignment]

_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}$")
#: Read and written this many bytes at a time.
CHUNK = 1 << 20
#: The start of a server's folder's name, then its PID.
PREFIX = "audiocnn-serve-"
LOCK = ".lock"


@dataclass
class Upload:
    """One uploaded file: the name the client gave it, and where the server stored it."""

    name: str  # the client's file name, as text for the results
    path: Path  # where it lies on this server, inside the request's own folder


def display_name(name: str | None, index: int) -> str:
    """The last part of the client's file name (browsers send only that; others may send more), or `upload-N`."""
    base = re.split(r"[\\/]", name or "")[-1].strip()
    return base[:255] or f"upload-{index + 1}"


class UploadFolder:
    """A private temporary folder for one request's files; `close` deletes it with everything in it,
    unless the results store keeps it (`kept`): then the store deletes it (`delete`) when it lets go."""

    def __init__(self, parent: Path) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="request-", dir=parent))
        self.uploads: list[Upload] = []
        self.kept = False

    def open_next(self, name: str | None) -> tuple[Upload, BinaryIO]:
        """The next upload's entry and its file, open for writing (the caller closes it)."""
        shown = display_name(name, len(self.uploads))
        match = _EXTENSION.search(shown)
        upload = Upload(shown, self.path / f"{len(self.uploads):04d}{match.group(0).lower() if match else ''}")
        self.uploads.append(upload)
        return upload, upload.path.open("wb")

    async def add_stream(self, name: str | None, chunks) -> Upload:  # noqa: ANN001 - an async iterator of bytes
        """A raw request body streamed into the folder."""
        upload, out = self.open_next(name)
        with out:
            async for chunk in chunks:
                out.write(chunk)
        return upload

    def close(self) -> None:
        """The request is over: delete the folder and every upload in it, unless the store keeps them."""
        if not self.kept:
            self.delete()

    def delete(self) -> None:
        """Delete the folder and every upload in it."""
        shutil.rmtree(self.path, ignore_errors=True)


class ServerFolder:
    """This server's temporary folder, locked while it runs; `close` removes it with every upload in it."""

    def __init__(self, root: Path | None = None) -> None:
        root = Path(root or tempfile.gettempdir())
        remove_stale(root)
        # made under a hidden name and locked before it is renamed: another server starting at the
        # same instant never sees it unlocked
        making = Path(tempfile.mkdtemp(prefix=f".{PREFIX}{os.getpid()}-", dir=root))
        self._lock = os.open(making / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        if fcntl is not None:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path = making.with_name(making.name[1:])
        making.rename(self.path)

    def request(self) -> UploadFolder:
        """A new folder for one request's uploads."""
        return UploadFolder(self.path)

    def requests(self) -> list[Path]:
        """The request folders still here (none once every request has ended)."""
        return sorted(p for p in self.path.iterdir() if p.name != LOCK)

    def close(self) -> None:
        """Delete the server's folder and release its lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock)


def remove_stale(root: Path) -> list[Path]:
    """Remove the folders of servers that are gone (their lock is free); the removed folders.

    Only this user's real folders are looked at: never a link, never another user's folder."""
    if fcntl is None:
        return []
    removed = []
    for folder in root.glob(PREFIX + "*"):
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.lstat().st_uid != os.getuid():
                continue
            handle = os.open(folder / LOCK, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue  # no lock: not a server's folder (or one being made this instant)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its server is alive
        finally:
            os.close(handle)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed
