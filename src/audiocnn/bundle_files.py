"""The files of a bundle folder, read safely: their names, regular files only, the model card,
and the outputs that would write over one of them.

A bundle is a folder anybody may send: a file in it may be a named pipe, a device, a link to
another file or far too large. Everything here checks with `stat` before reading, so a bad
folder is one error line, never a hang or a read without end.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from audiocnn import atomic
from audiocnn.errors import BundleError

WEIGHTS, CONFIG = "model.safetensors", "config.json"
#: The 8-bit backbone `audiocnn quantize` adds, and its record (`inference.quantize`).
INT8_GRAPH, INT8_INFO = "model.int8.onnx", "int8.json"
#: Every file of a bundle something reads: none may be written over by an output (`owned_file`).
FILES = (CONFIG, WEIGHTS, INT8_GRAPH, INT8_INFO)
#: The card people read: licence, figures, what the model cannot do.
MODEL_CARD = "MODEL_CARD.md"


def model_files(folder: Path) -> list[Path]:
    """The files a single model's backbone is built from, its config and its weights: what a graph
    made of it depends on (`inference.runtimes.files_marker`). Regular files only (`regular_file`):
    a named pipe among them would make whoever reads them wait forever."""
    return [regular_file(folder / name) for name in (CONFIG, WEIGHTS)]


def regular_file(path: Path, missing: str | None = None) -> Path:
    """`path` if it is a regular file (a link to one is fine), else one BundleError naming it.

    Checked with `stat`, never by opening: opening a named pipe blocks until something writes
    into it, and a device such as /dev/zero never ends, so a bundle holding one would hang
    whatever reads it. `missing`: the message for a file that is not there (default: "is missing").
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise BundleError(missing or f"{path.parent}: {path.name} is missing") from None
    except OSError as err:
        raise BundleError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not stat.S_ISREG(mode):
        kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a folder" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
        raise BundleError(f"{path}: is {kind}, not a regular file; a bundle's files are read only if they are "
                          "regular files")
    return path


#: A model card is text for people: more than this is not a card, and is not read.
MAX_CARD_BYTES = 256 * 1024


def model_card(folder: Path) -> str | None:
    """The bundle's MODEL_CARD.md, or None when it has none or it cannot be shown: read only if it is
    a regular file of at most `MAX_CARD_BYTES`, bytes that are not UTF-8 replaced, never an error
    (a server describing its model must not fail on the card)."""
    path = Path(folder) / MODEL_CARD
    try:
        if regular_file(path).stat().st_size > MAX_CARD_BYTES:
            return None
        return path.read_bytes()[:MAX_CARD_BYTES].decode("utf-8", errors="replace")
    except (BundleError, OSError):
        return None


def owned_file(folder: Path, path: Path) -> str | None:
    """What `path` is of the bundle in `folder`, or None: the folder itself, one of its `FILES` (there
    or not: writing one would change the bundle), or any file in it by inode (a link to one, another
    spelling of it). For refusing outputs that would destroy a bundle (`audiocnn export --out`)."""
    def same(a: Path, b: Path) -> bool:
        try:
            return os.path.samefile(a, b)
        except OSError:
            return False

    if same(path, folder):
        return "the bundle folder"
    if path.name in FILES and same(path.parent, folder):
        return path.name
    if path.exists() and folder.is_dir():
        for entry in folder.iterdir():
            if same(path, entry):
                return entry.name
    return None


def write_model_card(folder: Path, text: str) -> None:
    """Write the bundle's MODEL_CARD.md (atomically: a reader never sees half a card)."""
    atomic.write_text(Path(folder) / MODEL_CARD, text)
