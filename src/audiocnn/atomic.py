"""Files written so that a reader, or a run resumed after a kill, never sees half of one.

Everything the project writes and later trusts (a fold's records, a bundle, the feature cache,
an exported graph, a picture, `--out`) is written to a temporary name beside its target and
renamed onto it only when complete; renaming within a folder is atomic. The temporary name
holds the process and thread, so processes (DDP ranks, two runs) and threads never share one.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replaced(path: str | Path) -> Iterator[Path]:
    """A temporary path to write instead of `path`; renamed onto `path` when the block ends
    without an error, removed when it raises. A device or pipe is `path` itself: there is no
    half-written file to hide in a stream, and renaming over it would destroy it."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        # A device or a pipe (`--out /dev/null`, a named pipe): written into as it is. Renaming a
        # file onto it would replace the device itself, for every program on the machine.
        yield path
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        yield partial
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def remove_stale_partials(path: str | Path) -> int:
    """Remove the temporary files a killed process left beside `path` (a SIGKILL runs no cleanup),
    and none that a live process on this machine is still writing; returns how many went."""
    path = Path(path)
    removed = 0
    for partial in path.parent.glob(f".{glob_escape(path.name)}.*.partial"):
        pid = partial.name[len(path.name) + 2 :].split(".")[0]
        if pid.isdigit() and not alive(int(pid)):
            partial.unlink(missing_ok=True)
            removed += 1
    return removed


def glob_escape(name: str) -> str:
    """`name` matched literally by `Path.glob` (a recording may be called `take[1].wav`)."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def write_text(path: str | Path, text: str) -> None:
    """`path` holds `text`, whole, or is left as it was."""
    with replaced(path) as partial:
        partial.write_text(text)
