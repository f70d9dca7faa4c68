"""The `annotations` dataset: training clips cut from annotated long recordings (Raven
selection tables, Audacity labels). The module is not named `annotations`: inside the package
that name is `from __future__ import annotations`' feature object.

Layout: long recordings anywhere under the root, each with its table beside it, named after
it: `site1/rec.wav` with `site1/rec.Table.1.selections.txt` (Raven) or `site1/rec.txt`
(Audacity or Raven). A Raven table whose `Begin Path` / `Begin File` column names the
recording may sit anywhere under the root and cover several recordings. Other text files
are left alone, and so are `audiocnn predict`'s own result tables (`rec.audiocnn.selections.txt`,
`rec.audiocnn.labels.txt`: guesses, not annotations) until a reviewer renames one. The table
formats are read by `tables`.

Each selection gives clips of the recipe's length (`clip_seconds`), labelled with its label:

- a selection no longer than a clip gives one clip **centred** on it;
- a longer one gives ceil(length / clip_seconds) clips spread evenly from its begin to its
  end (overlapping as little as that allows), so all of the annotated sound is trained on;
- a clip is moved, not shortened, to stay inside its recording (a recording shorter than a
  clip gives the whole recording, zero-padded when loaded). A selection reaching past the
  recording's end is clamped to it and noted as a problem; one starting after it is left out.

`negatives=N` also draws up to N clips per recording from its unannotated time (overlapping
no selection, nor each other), labelled `negative_label`: this assumes the annotator marked
every sound of interest in a recording. They are drawn with a seed of (`seed`, the
recording's path under the root), so they repeat exactly, and do not change when another
recording is added.

The recording is each clip's group, so cross-validation folds (stratified by label, see
`base.assign_folds`) never put one recording's clips on both sides of a split.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from audiocnn import audio
from audiocnn.datasets._files import resolve_audio
from audiocnn.datasets.base import Clip, Dataset, assign_folds
from audiocnn.datasets.tables import Selection, read_table, table_kind
from audiocnn.errors import AudioError, DatasetError

DEFAULT_NEGATIVE_LABEL = "background"
#: In the name of `audiocnn predict --out-dir`'s result tables: the model's guesses, top-k and
#: `unknown` included, not annotations. Left alone until a person has reviewed one and renamed it.
UNREVIEWED = ".audiocnn."
#: A selection ending this little past its recording's end is rounding (Raven keeps
#: milliseconds, an MP3 header's length is an estimate): clamped without a problem.
END_SLACK_S = 0.01


def load(root: Path, *, clip_seconds: float = 5.0, label_column: str | None = None, negatives: int = 0,
         negative_label: str = DEFAULT_NEGATIVE_LABEL, n_folds: int = 5, seed: int = 0) -> Dataset:
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    if not clip_seconds > 0:
        raise DatasetError(f"clip length must be positive, got {clip_seconds} s")
    if negatives < 0:
        raise DatasetError(f"negatives must be 0 or more clips per recording, got {negatives}")
    if not negative_label.strip():
        raise DatasetError("the label of negative clips must not be empty")
    selections, problems = find_selections(root, label_column)
    if not selections and not problems:
        raise DatasetError(f"{root}: no selection tables found (expected a recording with its table beside it: "
                           "rec.wav and rec.Table.1.selections.txt (Raven) or rec.txt (Audacity))")
    by_recording: dict[Path, list[Selection]] = defaultdict(list)
    for selection in selections:
        by_recording[selection.recording].append(selection)
    clips: list[Clip] = []
    for recording in sorted(by_recording):
        try:
            duration = audio.info(recording).duration
        except AudioError as err:
            problems.append(f"{by_recording[recording][0].where}: {err}")
            continue
        kept = [s for s in (_clamped(s, duration, problems) for s in by_recording[recording]) if s is not None]
        group = _group(recording, root)
        clips += [Clip(recording, s.label, None, group, start, clip_seconds)
                  for s in kept for start in clip_starts(s.begin_s, s.end_s, duration, clip_seconds)]
        if negatives and kept:
            rng = np.random.default_rng([seed, zlib.crc32(group.encode())])
            clips += [Clip(recording, negative_label, None, group, start, clip_seconds)
                      for start in negative_starts(kept, duration, clip_seconds, negatives, rng)]
    if not clips:
        raise DatasetError(f"{root}: none of the selections could be used ({'; '.join(problems[:3])}"
                           f"{'; ...' if len(problems) > 3 else ''}); `audiocnn data info annotations` lists them all")
    n_recordings = len({c.group for c in clips})
    if n_recordings < n_folds:
        raise DatasetError(f"{root}: {n_folds} folds need at least {n_folds} annotated recordings (a recording's "
                           f"clips stay in one fold), found {n_recordings}; use fewer folds or annotate more recordings")
    classes = sorted({c.label for c in clips})
    return Dataset("annotations", root, classes, assign_folds(clips, n_folds, seed), problems)


def find_selections(root: Path, label_column: str | None = None) -> tuple[list[Selection], list[str]]:
    """Every selection in the tables under `root`, in a stable order, and the problems met."""
    recordings = audio.audio_files(root)
    by_folder: dict[Path, list[Path]] = defaultdict(list)
    by_name: dict[str, list[Path]] = defaultdict(list)
    for recording in recordings:
        by_folder[recording.parent].append(recording)
        by_name[recording.name.lower()].append(recording)
        by_name[recording.stem.lower()].append(recording)  # a WAV set converted to FLAC since

    def find(named: str, table: Path) -> Path | None:
        """A recording a table names: as given, beside the table, or by its name (if only one file has
        it, in any audio format) under the root."""
        given = Path(named)
        name = named.replace("\\", "/").rsplit("/", 1)[-1]  # the annotator's path, maybe from Windows
        for candidate in [*([given] if given.is_absolute() else []), table.parent / given, table.parent / name]:
            if (found := resolve_audio(candidate)) is not None and found.suffix.lower() in audio.AUDIO_EXTENSIONS:
                return found
        matches = by_name.get(name.lower()) or by_name.get(Path(name).stem.lower(), [])
        return matches[0] if len(matches) == 1 else None

    selections: list[Selection] = []
    problems: list[str] = []
    for table in sorted(p for p in root.rglob("*") if p.suffix.lower() == ".txt" and p.is_file()
                        and UNREVIEWED not in p.name):
        beside = recording_of(table, by_folder.get(table.parent, []))
        kind = table_kind(table, beside is not None)
        if kind is None:
            continue
        found, trouble = read_table(table, kind, beside, find, label_column)
        selections += found
        problems += trouble
    return selections, problems


def recording_of(table: Path, recordings: list[Path]) -> Path | None:
    """The recording a table is named after (`rec.txt`, `rec.Table.1.selections.txt` for `rec.wav`).

    The longest such name wins: `rec.1.Table.1.selections.txt` is `rec.1.wav`'s, not `rec.wav`'s."""
    named = [r for r in recordings if table.name == f"{r.stem}.txt" or table.name.startswith(f"{r.stem}.")]
    return max(named, key=lambda r: len(r.stem), default=None)


def clip_starts(begin: float, end: float, duration: float, length: float) -> list[float]:
    """Start times (s, to the millisecond) of the clips of `length` covering selection [begin, end)."""
    span = end - begin
    n = max(1, math.ceil(span / length - 1e-9))
    starts = [(begin + end - length) / 2] if n == 1 else [begin + i * (span - length) / (n - 1) for i in range(n)]
    latest = max(0.0, duration - length)
    return [round(min(max(start, 0.0), latest), 3) for start in starts]


def negative_starts(selections: list[Selection], duration: float, length: float, n: int,
                    rng: np.random.Generator) -> list[float]:
    """Up to `n` start times (s) of clips of `length` in the recording's unannotated time.

    The free stretches between selections are tiled with clip-long slots (each tiling shifted
    by a random offset within its slack), and `n` slots are drawn, in whole milliseconds, so
    no drawn clip overlaps a selection or another drawn clip. Fewer when fewer fit.
    """
    step = math.ceil(length * 1000)
    busy = sorted((math.floor(s.begin_s * 1000), math.ceil(s.end_s * 1000)) for s in selections)
    slots: list[int] = []
    free_from = 0
    for begin, end in [*busy, (math.floor(duration * 1000), math.floor(duration * 1000))]:
        room = begin - free_from
        if room >= step:
            fits = room // step
            offset = int(rng.integers(0, room - fits * step + 1))
            slots += [free_from + offset + i * step for i in range(fits)]
        free_from = max(free_from, end)
    if not slots:
        return []
    picked = rng.choice(len(slots), size=min(n, len(slots)), replace=False)
    return [slots[i] / 1000 for i in sorted(picked)]


def _clamped(selection: Selection, duration: float, problems: list[str]) -> Selection | None:
    """The selection within [0, duration] of its recording (problems noted), or None if it lies outside."""
    s, where = selection, selection.where
    if s.begin_s >= duration:
        problems.append(f"{where}: selection {s.begin_s:g}-{s.end_s:g} s starts after the end of "
                        f"{s.recording.name} ({duration:.3f} s); left out")
        return None
    begin, end = max(0.0, s.begin_s), min(s.end_s, duration)
    if s.begin_s < 0:
        problems.append(f"{where}: selection begins at {s.begin_s:g} s, before the recording starts; clamped to 0 s")
    if s.end_s > duration + END_SLACK_S:
        problems.append(f"{where}: selection ends at {s.end_s:g} s, past the end of {s.recording.name} "
                        f"({duration:.3f} s); clamped to it")
    return Selection(s.recording, begin, end, s.label, where)


def _group(recording: Path, root: Path) -> str:
    """The recording's path under the root (the same on every machine), or in full if outside it."""
    try:
        return recording.relative_to(root).as_posix()
    except ValueError:
        return str(recording)
