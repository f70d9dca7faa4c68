"""`audiocnn predict` over many files: one bad file never stops the rest, and a killed run resumes.

Each file is classified and written out before the next is (in input order, also with
several workers); a file that fails is reported on stderr with its name and the problem,
and the batch goes on. The caller gets the counts and turns any failure into a non-zero exit.

Results go to one stream (`StreamSink`: the terminal, or `--out` written atomically when
the run ends) or to one file per recording (`FolderSink`: `--out-dir`, mirroring the input
tree). A recording's result file is written atomically and is the mark that it is done: a
run killed at any moment and started again skips the finished recordings and redoes only
the one it was killed in (removing the temporary file the kill left), so no recording is
lost and none is written twice.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from tqdm import tqdm

from audiocnn import atomic, audio
from audiocnn.errors import item_failure
from audiocnn.inference.formats import SUFFIXES, PredictionWriter
from audiocnn.inference.inputs import InputFile, result_path
from audiocnn.inference.overview import SpectrogramCollector
from audiocnn.inference.predictor import FilePrediction, Predictor
from audiocnn.inference.workers import PredictorSpec, outcomes
from audiocnn.tabletext import printable


@dataclass
class BatchResult:
    """What a run over many files did: files classified, failed, and skipped as done before."""

    ok: int
    failed: int
    skipped: int = 0  # finished by an earlier run (`--skip-existing`)


#: Called with each classified recording, its prediction and, when asked for, its spectrogram
#: overview (to draw a timeline, cut snippets); any exception it raises counts as that file's failure.
FileDone = Callable[[InputFile, FilePrediction, SpectrogramCollector | None], None]


class ResultSink(Protocol):
    """Where predictions are written."""

    def finished(self, item: InputFile) -> bool:
        """Whether this recording's result exists already (`--skip-existing`)."""

    def add(self, item: InputFile, prediction: FilePrediction) -> None:
        """Write one recording's prediction."""

    def add_failure(self, item: InputFile, message: str) -> None:
        """Record that one recording failed, with its one-line message."""

    def close(self) -> None:
        """Finish the output once every recording is in."""


class StreamSink:
    """All results through one `PredictionWriter` (one table for the whole run)."""

    def __init__(self, writer: PredictionWriter) -> None:
        self.writer = writer

    def finished(self, item: InputFile) -> bool:
        """Never: one table is written from scratch."""
        return False

    def add(self, item: InputFile, prediction: FilePrediction) -> None:
        """Add the recording's rows to the table."""
        self.writer.add(prediction, item.root)

    def add_failure(self, item: InputFile, message: str) -> None:
        """Add the recording's failure to the table."""
        self.writer.add_failure(item.path, message)

    def close(self) -> None:
        """End the table (a JSON document is written whole here)."""
        self.writer.close()


class FolderSink:
    """One result file per recording below `out_dir`, mirroring the input tree (`--out-dir`).

    `make_writer` builds the writer for one file's stream (same options for every file).
    """

    def __init__(self, out_dir: Path, fmt: str, make_writer: Callable[[TextIO], PredictionWriter], *,
                 skip_existing: bool = True) -> None:
        self.out_dir, self.suffix, self.make_writer = Path(out_dir), SUFFIXES[fmt], make_writer
        self.skip_existing = skip_existing

    def target(self, item: InputFile) -> Path:
        """The recording's result file below `out_dir`, mirroring where it lies below its input folder."""
        return result_path(self.out_dir, item, self.suffix)

    def finished(self, item: InputFile) -> bool:
        """Whether `--skip-existing` is set and the result file exists."""
        return self.skip_existing and self.target(item).is_file()

    def add(self, item: InputFile, prediction: FilePrediction) -> None:
        """Write the recording's own result file, atomically."""
        target = self.target(item)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic.remove_stale_partials(target)  # the one a run killed while writing it left behind
        with atomic.replaced(target) as partial, partial.open("w", newline="", encoding="utf-8") as stream:
            writer = self.make_writer(stream)
            writer.add(prediction, item.root)
            writer.close()

    def add_failure(self, item: InputFile, message: str) -> None:
        """No result file: the recording is tried again by the next run (and reported again)."""

    def close(self) -> None:
        """Nothing to finish: each file was complete when written."""


def classify_files(predictor: Predictor, inputs: list[InputFile], sink: ResultSink, *,
                   on_file: FileDone | None = None, overview: bool = False, workers: int = 1,
                   spec: PredictorSpec | None = None, errors: TextIO | None = None,
                   progress: bool | None = None) -> BatchResult:
    """Classify `inputs` in order, writing each result as it is done; problems go to `errors` (stderr).

    `overview`: collect each file's log-mel overview while it streams (for `on_file`).
    `workers` > 1 with a `spec`: classify in that many processes (`inference.workers`).
    Recordings the sink has finished before (`--skip-existing`) are skipped and counted.
    """
    errors = errors or sys.stderr
    show = errors.isatty() if progress is None else progress
    todo = [item for item in inputs if not sink.finished(item)]
    skipped = len(inputs) - len(todo)
    expected = {item.path: _expected_windows(predictor, item.path) for item in todo}
    ok = failed = 0
    with tqdm(total=sum(expected.values()), unit="window", disable=not show, file=errors, leave=False) as bar:
        counted = [0]  # windows of the current file the bar has been told about

        def on_window() -> None:
            counted[0] += 1
            bar.update(1)

        for outcome in outcomes(predictor, todo, overview=overview, workers=workers, spec=spec,
                                on_window=on_window):
            item = outcome.item
            bar.set_description(printable(item.path.name)[:30])
            error = outcome.error
            if outcome.prediction is not None:
                try:  # its extras first: the result is the mark that a recording is done (`--out-dir`)
                    if on_file is not None:
                        on_file(item, outcome.prediction, outcome.overview)
                    sink.add(item, outcome.prediction)
                except Exception as err:  # noqa: BLE001 - a result or timeline that cannot be written is this file's
                    error = item_failure(item.path, err)
            bar.update(max(0, expected[item.path] - counted[0]))
            counted[0] = 0
            if error is None:
                ok += 1
                continue
            tqdm.write(f"audiocnn: error: {printable(error)}", file=errors)
            sink.add_failure(item, error)
            failed += 1
    sink.close()
    if failed or skipped or len(inputs) > 1:
        done_before = f", {skipped} done before (skipped)" if skipped else ""
        print(f"{ok} file(s) classified, {failed} failed{done_before}", file=errors)
    return BatchResult(ok, failed, skipped)


def _expected_windows(predictor: Predictor, path: Path) -> int:
    """Windows a recording will give, from its header (0 for a bad file: reported when its turn comes)."""
    try:
        seconds = predictor.options.seconds_of(audio.info(path).duration)
    except Exception:  # noqa: BLE001 - any bad file is reported, with its real error, when its turn comes
        return 0
    return predictor.windows_for(seconds) if seconds > 0 else 0
