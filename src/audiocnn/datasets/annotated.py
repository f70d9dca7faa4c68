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

Tables come from outside, so nothing in one can reach past the root or fill memory: tables
and recordings are found in one walk (`tabletext.walk`: no recursion, folder links not
followed, pipes and devices skipped); a table that is a link to a file outside the root is
not read; a recording a row names (`Begin Path`) must be one found under the root (`/`, or a
file outside, is a problem for that row); one recording's selections may make at most
`clip_budget` clips (a table of 5000 copies of a one-hour selection would make 3.6 M); a
table or recording that raises anything unexpected is one problem (`errors.item_failure`),
and the others are still read. When the clips cannot make a dataset (none usable, or fewer
recordings than folds), `AnnotationsError` carries what was read, so `audiocnn data info`
lists every problem before saying so.
"""

from __future__ import annotations

import math
import os
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from audiocnn import audio
from audiocnn.datasets.base import Clip, Dataset, assign_folds
from audiocnn.datasets.tables import Finder, Selection, read_table, table_kind
from audiocnn.errors import AudioError, DatasetError, item_failure
from audiocnn.tabletext import walk

DEFAULT_NEGATIVE_LABEL = "background"
#: In the name of `audiocnn predict --out-dir`'s result tables: the model's guesses, top-k and
#: `unknown` included, not annotations. Left alone until a person has reviewed one and renamed it.
UNREVIEWED = ".audiocnn."
#: A selection ending this little past its recording's end is rounding (Raven keeps
#: milliseconds, an MP3 header's length is an estimate): clamped without a problem.
END_SLACK_S = 0.01
#: The clips one recording's selections may make: enough to tile it `COVERINGS` times over
#: (labels overlap; each short call gets a clip centred on it), at least `MIN_CLIPS`, at most
#: `MAX_CLIPS` (a header may claim weeks of audio). Past that the table is wrong, not the data.
COVERINGS, MIN_CLIPS, MAX_CLIPS = 20, 1_000, 100_000


class AnnotationsError(DatasetError):
    """The annotations make no usable dataset (no clip, or fewer recordings than folds).

    `dataset` holds what was read, its clips without folds and every problem met, so `audiocnn
    data info` can list the problems (often the real cause) before this error."""

    def __init__(self, message: str, dataset: Dataset) -> None:
        super().__init__(message)
        self.dataset = dataset


def clip_budget(duration: float, clip_seconds: float) -> int:
    """The most clips a recording of `duration` seconds may give (see `COVERINGS`)."""
    return int(min(MAX_CLIPS, max(MIN_CLIPS, COVERINGS * math.ceil(duration / clip_seconds))))


def load(root: Path, *, clip_seconds: float = 5.0, label_column: str | None = None, negatives: int = 0,
         negative_label: str = DEFAULT_NEGATIVE_LABEL, n_folds: int = 5, seed: int = 0) -> Dataset:
    """Clips of `clip_seconds` cut from the long recordings below `root` at their Raven or Audacity
    selections (plus `negatives` per recording from unannotated time), folds assigned by recording;
    every table's or recording's problem is listed, and an `AnnotationsError` keeps them all."""
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
            clips += _recording_clips(recording, by_recording[recording], root, clip_seconds, negatives,
                                      negative_label, seed, problems)
        except Exception as err:  # a decoder's surprise: one problem, the other recordings go on
            problems.append(f"{by_recording[recording][0].where}: {item_failure(recording, err)}")
    found = Dataset("annotations", root, sorted({c.label for c in clips}), clips, problems)
    cause = _problems_first(problems)
    if not clips:
        raise AnnotationsError(f"{root}: none of the selections could be used{cause}", found)
    n_recordings = len({c.group for c in clips})
    if n_recordings < n_folds:
        raise AnnotationsError(f"{root}: {n_folds} folds need at least {n_folds} annotated recordings (a recording's "
                               f"clips stay in one fold), found {n_recordings}; use fewer folds or annotate more "
                               f"recordings{cause}", found)
    try:
        found.clips = assign_folds(clips, n_folds, seed)
    except DatasetError as err:
        raise AnnotationsError(f"{root}: {err}{cause}", found) from None
    return found


def _problems_first(problems: list[str]) -> str:
    """The problems an error about too few clips should show: they are often its cause."""
    if not problems:
        return ""
    listed = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
    return (f" ({len(problems)} problem(s) in the tables: {listed}; `audiocnn data info annotations` lists them "
            "all)")


def _recording_clips(recording: Path, selections: list[Selection], root: Path, clip_seconds: float,
                     negatives: int, negative_label: str, seed: int, problems: list[str]) -> list[Clip]:
    """One recording's clips: its selections' (at most `clip_budget`), then its negatives."""
    try:
        duration = audio.info(recording).duration
    except AudioError as err:
        problems.append(f"{selections[0].where}: {err}")
        return []
    kept = [s for s in (_clamped(s, duration, problems) for s in selections) if s is not None]
    budget = clip_budget(duration, clip_seconds)
    wanted = sum(clip_count(s.begin_s, s.end_s, clip_seconds) for s in kept)
    if wanted > budget:
        problems.append(f"{recording}: its {len(kept)} selections (first at {kept[0].where}) would make {wanted:,} "
                        f"clips of {clip_seconds:g} s, more than the {budget:,} its {duration:.1f} s allow; left out "
                        "(selections repeated, or far too long?)")
        return []
    group = _group(recording, root)
    clips = [Clip(recording, s.label, None, group, start, clip_seconds)
             for s in kept for start in clip_starts(s.begin_s, s.end_s, duration, clip_seconds)]
    if negatives and kept:
        rng = np.random.default_rng([seed, zlib.crc32(group.encode())])
        clips += [Clip(recording, negative_label, None, group, start, clip_seconds)
                  for start in negative_starts(kept, duration, clip_seconds, min(negatives, budget), rng)]
    return clips


def find_selections(root: Path, label_column: str | None = None) -> tuple[list[Selection], list[str]]:
    """Every selection in the tables under `root`, in a stable order, and the problems met
    (see the module docstring for what is refused, and how)."""
    files = walk(root, lambda name: name.lower().endswith((".txt", *audio.AUDIO_EXTENSIONS)))
    recordings = [path for path in files if path.suffix.lower() in audio.AUDIO_EXTENSIONS]
    by_folder: dict[Path, list[Path]] = defaultdict(list)
    for recording in recordings:
        by_folder[recording.parent].append(recording)
    find = _finder(root, recordings)
    selections: list[Selection] = []
    problems: list[str] = []
    for table in (p for p in files if p.suffix.lower() == ".txt" and UNREVIEWED not in p.name):
        try:
            target = os.path.realpath(table)
            if not _inside(target, os.path.realpath(root)):
                problems.append(f"{table}: a link to {target}, outside the dataset root; not read (copy the "
                                "table into the root)")
                continue
            beside = recording_of(table, by_folder.get(table.parent, []))
            kind = table_kind(table, beside is not None)
            if kind is None:
                continue
            found, trouble = read_table(table, kind, beside, find, label_column)
        except Exception as err:  # one table's surprise is one problem; the other tables are still read
            problems.append(item_failure(table, err))
            continue
        selections += found
        problems += trouble
    return selections, problems


def _finder(root: Path, recordings: list[Path]) -> Finder:
    """What resolves a recording a table names, only ever to one of `recordings` (those under the root)."""
    by_path = {_absolute(r): r for r in recordings}
    by_stem: dict[str, list[Path]] = defaultdict(list)  # a WAV set converted to FLAC since
    by_name: dict[str, list[Path]] = defaultdict(list)
    for recording in recordings:  # AUDIO_EXTENSIONS order within a stem, as audio files were looked for
        by_stem[os.path.splitext(_absolute(recording))[0]].append(recording)
        by_name[recording.name.lower()].append(recording)
        by_name[recording.stem.lower()].append(recording)
    for same in by_stem.values():
        same.sort(key=lambda r: audio.AUDIO_EXTENSIONS.index(r.suffix.lower()))
    top = _absolute(root)

    def find(named: str, table: Path) -> Path | str:
        """As given (absolute, or from the table's folder), beside the table, or by its name if only
        one recording under the root has it (the annotator's path, maybe from Windows)."""
        name = named.replace("\\", "/").rsplit("/", 1)[-1]
        if name in ("", ".", ".."):
            return "names a folder, not a recording"
        given = [named] if os.path.isabs(named) else []
        candidates = [_absolute(c) for c in [*given, table.parent / named, table.parent / name]]
        for candidate in candidates:
            if candidate in by_path:
                return by_path[candidate]
            if same := by_stem.get(os.path.splitext(candidate)[0]):
                return same[0]
        matches = by_name.get(name.lower()) or by_name.get(Path(name).stem.lower(), [])
        if len(matches) == 1:
            return matches[0]
        if any(not _inside(c, top) and os.path.exists(c) for c in candidates[:2]):
            return f"lies outside the dataset root {root}; not used"
        return "not found"

    return find


def _absolute(path: str | Path) -> str:
    """`path` made absolute and normalised by its text alone (links are not resolved)."""
    return os.path.normpath(os.path.abspath(path))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def recording_of(table: Path, recordings: list[Path]) -> Path | None:
    """The recording a table is named after (`rec.txt`, `rec.Table.1.selections.txt` for `rec.wav`).

    The longest such name wins: `rec.1.Table.1.selections.txt` is `rec.1.wav`'s, not `rec.wav`'s."""
    named = [r for r in recordings if table.name == f"{r.stem}.txt" or table.name.startswith(f"{r.stem}.")]
    return max(named, key=lambda r: len(r.stem), default=None)


def clip_count(begin: float, end: float, length: float) -> int:
    """How many clips of `length` cover selection [begin, end) (`clip_starts`, without making them)."""
    return max(1, math.ceil((end - begin) / length - 1e-9))


def clip_starts(begin: float, end: float, duration: float, length: float) -> list[float]:
    """Start times (s, to the millisecond) of the clips of `length` covering selection [begin, end)."""
    span = end - begin
    n = clip_count(begin, end, length)
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
    stretches: list[tuple[int, int]] = []  # (first slot's start in ms, slots): never every slot (weeks of ms)
    free_from = 0
    for begin, end in [*busy, (math.floor(duration * 1000), math.floor(duration * 1000))]:
        room = begin - free_from
        if room >= step:
            fits = room // step
            offset = int(rng.integers(0, room - fits * step + 1))
            stretches.append((free_from + offset, fits))
        free_from = max(free_from, end)
    total = sum(fits for _, fits in stretches)
    if not total:
        return []
    ends = np.cumsum([fits for _, fits in stretches])
    starts = []
    for i in sorted(int(i) for i in rng.choice(total, size=min(n, total), replace=False)):
        k = int(np.searchsorted(ends, i, side="right"))
        first, _ = stretches[k]
        starts.append((first + (i - (int(ends[k - 1]) if k else 0)) * step) / 1000)
    return starts


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
