"""`audiocnn predict` over many files: one bad file never stops the rest.

Each file is classified and written out before the next starts; a file that fails is
reported on stderr with its name and the problem, and the batch goes on. The caller gets
the counts and turns any failure into a non-zero exit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from audiocnn import audio
from audiocnn.errors import AudiocnnError
from audiocnn.inference.formats import PredictionWriter, printable
from audiocnn.inference.overview import SpectrogramCollector
from audiocnn.inference.predictor import FilePrediction, Predictor


@dataclass
class BatchResult:
    ok: int
    failed: int


#: Called with each classified file and, when asked for, its spectrogram overview (e.g. to draw it).
FileDone = Callable[[FilePrediction, SpectrogramCollector | None], None]


def classify_files(predictor: Predictor, files: list[Path], writer: PredictionWriter, *,
                   on_file: FileDone | None = None, overview: bool = False, errors: TextIO | None = None,
                   progress: bool | None = None) -> BatchResult:
    """Classify `files` in order, writing each result as it is done; problems go to `errors` (stderr).

    `overview`: collect each file's log-mel overview while it streams (for `on_file`, which
    is called after each file is written; an AudiocnnError it raises counts as that file's).
    """
    errors = errors or sys.stderr
    show = errors.isatty() if progress is None else progress
    seconds = {}
    for path in files:
        try:
            seconds[path] = audio.info(path).duration
        except AudiocnnError:
            seconds[path] = 0.0  # reported when its turn comes
    expected = {path: predictor.windows_for(s) if s else 0 for path, s in seconds.items()}
    ok = failed = 0
    with tqdm(total=sum(expected.values()), unit="window", disable=not show, file=errors, leave=False) as bar:
        for path in files:
            bar.set_description(printable(path.name)[:30])
            done_before = bar.n
            try:
                collector = SpectrogramCollector(predictor.rate, seconds[path]) if overview else None
                result = predictor.predict(path, on_window=lambda: bar.update(1), on_block=collector)
                writer.add(result)
                if on_file is not None:
                    on_file(result, collector)
                ok += 1
            except AudiocnnError as err:
                bar.update(max(0, expected[path] - (bar.n - done_before)))
                message = str(err) if str(path) in str(err) else f"{path}: {err}"
                tqdm.write(f"audiocnn: error: {printable(message)}", file=errors)
                writer.add_failure(path, message)
                failed += 1
    writer.close()
    if failed or len(files) > 1:
        print(f"{ok} file(s) classified, {failed} failed", file=errors)
    return BatchResult(ok, failed)
