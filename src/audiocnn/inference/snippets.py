"""The audio of each detection, cut out for a reviewer to listen to (`predict --snippets DIR`).

One folder per label; each snippet is a WAV at the recording's own rate (mono, as the model
heard it), with `pad_s` seconds of the recording either side when asked (a call is easier to judge
with what came before and after it), named so it leads back to its source: `<recording>__<start>-<end>s__<confidence>.wav`,
where `<recording>` is the recording's path below the folder it was found in, with `/`
written as `__`. Times are seconds in the recording, so the same moment can be found in
Raven or Audacity.

A cap per label (`--snippets-per-label`) keeps a common sound from filling the disk; the
first detections in input order are kept. Snippets already in DIR count towards the cap,
and one that exists is not written again, so a batch killed and run again ends with the
same snippets as one run straight through. `unknown` is never cut: there is nothing to
review under a label the model did not give.

A name longer than a file system takes (255 bytes per name on ext4, APFS, NTFS; UTF-8 bytes,
so 64 characters of some scripts; less the room for the temporary name it is written under) keeps its start and ends in `~` and a digest of the whole
name, then the times and confidence: still unique, still the same on the next run. A snippet
that cannot be written (a full disk, a label folder that is a file) is one warning line and the
batch goes on: snippets are for review, and must not cost the recordings' results.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from audiocnn import atomic, audio
from audiocnn.errors import AudiocnnWarning, item_failure
from audiocnn.inference.detections import Detection
from audiocnn.inference.inputs import InputFile

#: Snippets per label unless told otherwise.
DEFAULT_PER_LABEL = 100
#: The longest snippet or label-folder name written, in bytes as the file system stores them (UTF-8):
#: 255, the most ext4, APFS and NTFS take, less the room of the temporary name a snippet is written
#: under first (`.NAME.PID.THREAD.partial`, `atomic.replaced`: at most 40 bytes more).
MAX_NAME_BYTES = 255 - 40
#: Hex digits of the digest a shortened name ends with (64 bits: no two names of a run meet).
_DIGEST = 16
#: Characters a label may not bring into a folder name (a path separator, or nothing at all).
_UNSAFE = str.maketrans({"/": "_", "\\": "_", "\0": "_"})


def fitted(name: str, tail: str = "") -> str:
    """`name + tail` if it fits in `MAX_NAME_BYTES`, else `name` cut (whole characters) + `~digest` + `tail`,
    the digest of the whole of `name`, so two long names that share a start stay apart."""
    if len(os.fsencode(name + tail)) <= MAX_NAME_BYTES:
        return name + tail
    digest = "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:_DIGEST]
    budget = MAX_NAME_BYTES - len(os.fsencode(digest + tail))
    kept, used = [], 0
    for char in name:
        used += len(os.fsencode(char))
        if used > budget:
            break
        kept.append(char)
    return "".join(kept) + digest + tail


def label_folder(label: str) -> str:
    """A label as a folder name: separators replaced; `.` and `..` cannot climb out of DIR."""
    name = label.translate(_UNSAFE).strip() or "_"
    return fitted(f"_{name}" if name in (".", "..") else name)


def snippet_name(item: InputFile, detection: Detection) -> str:
    """`site1__rec.wav__12.50-17.50s__0.873.wav`: the recording, where, and how sure."""
    source = "__".join(item.relative.parts).translate(_UNSAFE)
    return fitted(source, f"__{detection.start:.2f}-{detection.end:.2f}s__{detection.confidence:.3f}.wav")


class SnippetWriter:
    """Writes the snippets of each classified recording into `folder`, up to `per_label` a label."""

    def __init__(self, folder: Path, per_label: int = DEFAULT_PER_LABEL, min_confidence: float = 0.0,
                 pad_s: float = 0.0) -> None:
        self.folder, self.per_label, self.min_confidence = Path(folder), per_label, min_confidence
        self.pad_s = pad_s  # seconds of the recording either side of a detection (cut at its ends)
        self._kept: dict[str, set[str]] = {}

    def kept(self, label: str) -> set[str]:
        """The snippet names of `label` so far (those already on disk included)."""
        if label not in self._kept:
            where = self.folder / label_folder(label)
            self._kept[label] = {p.name for p in where.glob("*.wav")} if where.is_dir() else set()
        return self._kept[label]

    def add(self, item: InputFile, detections: list[Detection]) -> int:
        """Cut `detections` of `item` (those with a probability of at least `min_confidence`); returns
        how many were written. A snippet that cannot be written is a warning (AudiocnnWarning), and
        the next one is tried; a recording that can no longer be read is one warning for all of it."""
        written = 0
        rate = None  # read from the header once a snippet is to be cut
        for detection in detections:
            if detection.is_unknown or detection.confidence is None or detection.confidence < self.min_confidence:
                continue
            names = self.kept(detection.label)
            name = snippet_name(item, detection)
            if name in names or len(names) >= self.per_label:
                continue
            target = self.folder / label_folder(detection.label) / name
            try:
                rate = rate or audio.info(item.path).sample_rate
                start = max(0.0, detection.start - self.pad_s)
                samples = audio.load(item.path, offset=start, duration=detection.end + self.pad_s - start)
            except Exception as err:  # noqa: BLE001 - it changed or went since it was classified, or a surprise
                warnings.warn(f"{item_failure(item.path, err)}; no snippets of it written", AudiocnnWarning,
                              stacklevel=2)
                return written
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic.replaced(target) as partial:
                    sf.write(str(partial), np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
            except OSError as err:  # the disk, not the program: say which and why, no traceback to log
                warnings.warn(f"{target}: snippet not written ({err.strerror or err})", AudiocnnWarning, stacklevel=2)
                continue
            except Exception as err:  # noqa: BLE001 - one snippet's surprise must not end the batch
                warnings.warn(f"{item_failure(target, err)}; snippet not written", AudiocnnWarning, stacklevel=2)
                continue
            names.add(name)
            written += 1
        return written
