"""`audiocnn data info`: what a dataset holds and what is wrong with it, before training on it.

Checks the things that silently spoil a cross-validation: missing or unreadable files,
unknown labels, the same file (or the same audio content) listed twice, and one source
recording (group) spread over several folds, which leaks test audio into training. Clips cut
from one long recording (annotations) share a file by design: a clip is a duplicate only when
the same part of the same file is listed twice, and each file is opened and hashed once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from audiocnn.datasets._files import unreadable
from audiocnn.datasets.archives import hash_file
from audiocnn.datasets.base import Clip, Dataset, count_by
from audiocnn.tabletext import printable


@dataclass
class Report:
    """`problems` make a dataset unusable as listed; `warnings` are worth knowing but legal."""

    dataset: Dataset
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def check(dataset: Dataset, *, check_audio: bool = True) -> Report:
    """Run every check; `check_audio` also opens each file and hashes its bytes (seconds per 1000 clips)."""
    clips = dataset.clips if dataset.fixed_split is None else _split_clips(dataset)
    problems = list(dataset.problems)
    problems += _duplicate_paths(clips)
    if check_audio:
        problems += list(unreadable(clip.path for clip in clips).values())
        problems += _duplicate_content(clips)
    return Report(dataset, problems, _groups_across_folds(clips))


def format_report(report: Report, *, max_problems: int = 50) -> str:
    """Plain-text tables: clips per fold (or split part), clips per class, then problems.

    Labels, file names and problems are text from outside (an annotator's label, a table's
    cell): control characters are shown escaped (`printable`), so none reaches the terminal."""
    d = report.dataset
    lines = [f"{d.name} at {printable(d.root)}: {len(d.clips)} clips, {len(d.classes)} classes"]
    if d.fixed_split is not None:
        s = d.fixed_split
        lines += [f"split {s.name!r}: train {len(s.train)}, val {len(s.val)}, test {len(s.test)}"]
    if d.folds:
        per_fold = count_by(d.clips, "fold")
        lines += ["", "fold  clips"] + [f"{fold:>4}  {per_fold[fold]:>5}" for fold in d.folds]
    per_class = count_by(d.clips, "label")
    shown = {c: printable(c) for c in d.classes}
    width = max(map(len, shown.values())) if d.classes else 5
    lines += ["", f"{'class':<{width}}  clips"] + [f"{shown[c]:<{width}}  {per_class[c]:>5}" for c in d.classes]
    for title, items in (("warning", report.warnings), ("problem", report.problems)):
        if items:
            lines += ["", f"{len(items)} {title}(s):"] + [f"  {printable(p)}" for p in items[:max_problems]]
            if len(items) > max_problems:
                lines.append(f"  ... and {len(items) - max_problems} more")
    if report.ok:
        lines += ["", "no problems found"]
    return "\n".join(lines)


def _split_clips(dataset: Dataset) -> list[Clip]:
    s = dataset.fixed_split
    assert s is not None
    return [*s.train, *s.val, *s.test]


def _duplicate_paths(clips: list[Clip]) -> list[str]:
    seen: dict[tuple[Path, str], int] = defaultdict(int)
    for clip in clips:
        seen[clip.path.resolve(), clip.segment] += 1
    return [f"{path}{segment}: listed {n} times" for (path, segment), n in seen.items() if n > 1]


def _files(clips: list[Clip]) -> list[Path]:
    """Each clip's file once, in order (many clips may be parts of one recording)."""
    return list(dict.fromkeys(clip.path for clip in clips))


def _groups_across_folds(clips: list[Clip]) -> list[str]:
    """One source recording in several folds: its clips may leak between train and test."""
    folds: dict[str, set[int]] = defaultdict(set)
    labels: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        if clip.group is not None and clip.fold is not None:
            folds[clip.group].add(clip.fold)
            labels[clip.group].add(clip.label)
    return [
        f"source {group} ({', '.join(sorted(labels[group]))}) is in folds {sorted(f)}: related audio on both sides of a split"
        for group, f in sorted(folds.items())
        if len(f) > 1
    ]


def _duplicate_content(clips: list[Clip]) -> list[str]:
    by_hash: dict[str, list[Path]] = defaultdict(list)
    for path in _files(clips):
        if path.is_file():
            by_hash[hash_file(path, "sha1").hexdigest()].append(path)
    return [
        f"identical audio in {len(paths)} files: {', '.join(str(p) for p in sorted(set(paths)))}"
        for paths in by_hash.values()
        if len(set(paths)) > 1
    ]
