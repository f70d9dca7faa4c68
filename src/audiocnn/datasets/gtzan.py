"""GTZAN (Tzanetakis & Cook 2002): 1000 thirty-second music excerpts, 10 genres, no folds.

Two ways to evaluate, both deterministic:
- `split="kfold"`: stratified k-fold with a fixed seed. GTZAN repeats excerpts and artists,
  so k-fold numbers are optimistic; it is here to compare with papers that used it.
- `split="filtered"`: the artist-filtered ("fault-filtered") train/valid/test lists of
  Kereliuk, Sturm & Larsen 2015 (443/197/290), read from `splits_dir`. This is the fair test.
"""

from __future__ import annotations

from pathlib import Path

from audiocnn.audio import audio_files
from audiocnn.datasets._files import resolve_audio
from audiocnn.datasets.base import Clip, Dataset, Split, assign_folds
from audiocnn.errors import DatasetError

CLASSES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
SPLIT_FILES = {"train": "train_filtered.txt", "val": "valid_filtered.txt", "test": "test_filtered.txt"}
_LAYOUTS = ("genres", "genres_original", "Data/genres_original", ".")


def genres_folder(root: Path) -> Path:
    """The folder holding one sub-folder per genre: the official `genres/` or Kaggle's layout."""
    for layout in _LAYOUTS:
        folder = root / layout
        if (folder / "blues").is_dir():
            return folder
    raise DatasetError(f"{root}: no GTZAN genre folders found (looked for {', '.join(_LAYOUTS)} with blues/ inside)")


def load(
    root: Path, *, split: str = "kfold", n_folds: int = 10, seed: int = 0, splits_dir: Path | None = None
) -> Dataset:
    """GTZAN from `root`: seeded stratified `n_folds` (split=kfold) or the artist-filtered split (split=filtered)."""
    folder = genres_folder(root)
    clips, problems = [], []
    for genre in CLASSES:
        files = audio_files(folder / genre)
        if not files:
            problems.append(f"{folder / genre}: no audio files for genre {genre!r}")
        clips += [Clip(path, genre) for path in files]
    extra = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in CLASSES)
    problems += [f"{folder / name}: unknown genre folder {name!r}" for name in extra]
    if split == "kfold":
        return Dataset("gtzan", root, list(CLASSES), assign_folds(clips, n_folds, seed), problems)
    if split == "filtered":
        fixed = _filtered_split(folder, splits_dir or root / "splits", problems)
        return Dataset("gtzan", root, list(CLASSES), clips, problems, fixed_split=fixed)
    raise DatasetError(f"gtzan: unknown split {split!r} (choose kfold or filtered)")


def _filtered_split(folder: Path, splits_dir: Path, problems: list[str]) -> Split:
    parts: dict[str, list[Clip]] = {}
    for part, name in SPLIT_FILES.items():
        listing = splits_dir / name
        if not listing.is_file():
            raise DatasetError(
                f"{listing}: split list not found (run `audiocnn data download gtzan-splits --root ROOT`: "
                f"it puts the lists in ROOT/splits, where they are looked for by default)"
            )
        parts[part] = []
        for line, entry in enumerate(listing.read_text().split(), start=1):
            genre = entry.split("/")[0]
            path = resolve_audio(folder / entry)
            if genre not in CLASSES:
                problems.append(f"{listing}:{line}: unknown genre {genre!r}")
            elif path is None:
                problems.append(f"{listing}:{line}: missing audio file {entry}")
            else:
                parts[part].append(Clip(path, genre))
    return Split("filtered", parts["train"], parts["val"], parts["test"])
