"""Which recordings a run classifies, where each one's results go, and which share is this shard's.

A collection is named by files and folders; each recording keeps the folder it was found in
(its `root`), so results can mirror the input tree (`--out-dir`) and Kaleidoscope can name
`INDIR` and `FOLDER`. `--shard K/N` takes a deterministic 1/N of the recordings by a hash of
their path below the root: every machine of a job array given the same folders picks the
same shares, whatever order it lists them in, and adding recordings later moves none of the
others to another shard.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from audiocnn.audio import audio_files
from audiocnn.errors import ConfigError


@dataclass(frozen=True)
class InputFile:
    """One recording to classify, and the folder it was found in (its own folder when named alone)."""

    path: Path
    root: Path

    @property
    def relative(self) -> Path:
        """Its path below `root`, which `--out-dir` mirrors."""
        return self.path.relative_to(self.root)


def collect(paths: list[Path]) -> list[InputFile]:
    """Files as given, folders expanded to the audio files inside (sorted); a missing path is an error."""
    found: list[InputFile] = []
    for path in paths:
        if path.is_dir():
            files = audio_files(path)
            if not files:
                raise ConfigError(f"{path}: folder holds no audio files")
            found += [InputFile(file, path) for file in files]
        elif path.exists():
            found.append(InputFile(path, path.parent))
        else:
            raise ConfigError(f"{path}: no such file or folder")
    return found


def parse_shard(text: str) -> tuple[int, int]:
    """`"2/8"` -> (2, 8): the second of eight shares."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ConfigError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 1/4 (SLURM: "
                          "$((SLURM_ARRAY_TASK_ID + 1))/$SLURM_ARRAY_TASK_COUNT)")
    return int(match.group(1)), int(match.group(2))


def shard(inputs: list[InputFile], index: int, count: int) -> list[InputFile]:
    """The recordings of share `index` (1-based) of `count`, in their original order."""
    return [item for item in inputs if shard_of(item, count) == index]


def shard_of(item: InputFile, count: int) -> int:
    """The share (1-based) a recording belongs to: a hash of its path below its root."""
    digest = hashlib.sha256(item.relative.as_posix().encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def result_path(out_dir: Path, item: InputFile, suffix: str) -> Path:
    """Where `--out-dir` puts a recording's results: its place below the root, `.wav` -> `suffix`."""
    relative = item.relative
    return out_dir / relative.parent / f"{relative.stem}{suffix}"


def check_result_paths(inputs: list[InputFile], out_dir: Path, suffix: str) -> None:
    """Two recordings whose results would share a file (`a.wav` and `a.flac`, or two files of one
    name given from different folders) are refused before any work is done."""
    owners: dict[Path, Path] = {}
    for item in inputs:
        target = result_path(out_dir, item, suffix)
        if target in owners and owners[target] != item.path:
            raise ConfigError(f"--out-dir: {owners[target]} and {item.path} would both write {target}; "
                              "rename one, or give their common folder instead of the files")
        owners[target] = item.path
