"""One exception type per domain.

Each message names the file (or setting) and the problem, so the CLI can print it as the
whole story: the user never needs a traceback to know what to fix.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import platformdirs


class AudiocnnError(Exception):
    """Base class: anything the CLI reports as one line and a non-zero exit."""


class AudioError(AudiocnnError):
    """A file that cannot be turned into a usable waveform."""


class ConfigError(AudiocnnError):
    """A setting (config file, CLI option, frontend parameter) that is not valid."""


class OptionError(ConfigError):
    """An option's value, or combination of options, that cannot work, naming the option by its field
    (`top_k`): each front end names it its own way (`named`), the CLI as `--top-k`, the API as `top_k`.

    Example:
        >>> err = OptionError("top_k", "should be at least 1 (got 0)")
        >>> str(err), err.named(lambda field: "--" + field.replace("_", "-"))
        ('top_k: should be at least 1 (got 0)', '--top-k: should be at least 1 (got 0)')
    """

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option, self.problem = option, problem

    def named(self, name: Callable[[str], str]) -> str:
        """The message with the option named as `name(field)` says."""
        return f"{name(self.option)}: {self.problem}"

    def __reduce__(self) -> tuple[type[OptionError], tuple[str, str]]:  # crosses to and from worker processes
        return type(self), (self.option, self.problem)


class DatasetError(AudiocnnError):
    """A dataset root, metadata file or split list that cannot be used."""


class DownloadError(DatasetError):
    """A download that failed, or whose checksum does not match."""


class TrainingError(AudiocnnError):
    """Training that cannot give a usable model (e.g. a loss that is no longer a number)."""


class AudiocnnWarning(UserWarning):
    """A problem the user chose to accept (e.g. `--allow-incomplete`): the CLI prints it on one line."""


class BundleError(AudiocnnError):
    """A trained-model bundle that is missing, broken or from another version."""


#: Where tracebacks of unexpected failures go (`AUDIOCNN_LOG_DIR` overrides it): the one-line
#: message a user sees names the file, so a bug report can carry the whole story.
LOG_DIR_VARIABLE = "AUDIOCNN_LOG_DIR"
#: Bounds on what the logs may take: bytes per process's log, and log files kept in the folder.
MAX_LOG_BYTES = 5 * 1024 * 1024
MAX_LOG_FILES = 50
_MAX_MESSAGE_CHARS = 300


def item_failure(item: object, err: BaseException) -> str:
    """The one line that reports why one item (a file, a request, a table) failed, so the rest goes on.

    An `AudiocnnError` already says what the user can fix: its message, with the item's name in
    front unless it holds it. Any other exception is a bug or a library's surprise (say, PyAV
    refusing a tag that is not UTF-8): `ITEM: internal error (Type: message); traceback in LOG`,
    with the full traceback appended to this process's log file.

    Args:
        item: what failed, as the user named it (a path, an upload's file name).
        err: the exception it raised.

    Returns:
        One line, without the `audiocnn: error: ` prefix the CLI adds.

    Examples:
        >>> item_failure("a.wav", AudioError("a.wav: file is empty (0 bytes)"))
        'a.wav: file is empty (0 bytes)'
    """
    name = str(item)
    if isinstance(err, AudiocnnError):
        text = str(err)
        return text if name in text else f"{name}: {text}"
    detail = " ".join(str(err).split())
    if len(detail) > _MAX_MESSAGE_CHARS:
        detail = detail[:_MAX_MESSAGE_CHARS] + "…"
    kind = type(err).__name__
    return f"{name}: internal error ({kind}: {detail}){_log_traceback(name, err)}"


def public_failure(item: object, err: BaseException) -> str:
    """What a server's client is told of one item's unexpected failure: the item and the exception's
    type, never its message, which may hold the server's paths (an OSError names the file it met).
    The whole story goes to the server's own log with `item_failure`."""
    return f"{item}: internal error ({type(err).__name__}); the server's log has the details"


def log_path() -> Path:
    """This process's log file (not created until something is logged)."""
    folder = os.environ.get(LOG_DIR_VARIABLE)
    base = Path(folder) if folder else Path(platformdirs.user_log_path("audiocnn", appauthor=False))
    return base / f"audiocnn-{_STARTED}-{os.getpid()}.log"


def _log_traceback(name: str, err: BaseException) -> str:
    """Append `err`'s traceback to the log; `; traceback in PATH`, or why it could not be kept."""
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        size = path.stat().st_size if path.exists() else 0
        if size == 0:
            _prune(path.parent)
        if size >= MAX_LOG_BYTES:
            return f"; traceback not kept (this run's log {path} is full)"
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with path.open("a", encoding="utf-8", errors="backslashreplace") as log:
            log.write(f"--- {stamp} {name}\n{text[: MAX_LOG_BYTES - size]}\n")
    except OSError as problem:
        return f"; traceback not kept ({problem.strerror or problem})"
    return f"; traceback in {path}"


def _prune(folder: Path) -> None:
    """Keep the newest `MAX_LOG_FILES` - 1 logs, so a new one fits within the bound (another process,
    a worker of the same run, may remove one meanwhile)."""
    ages: list[tuple[float, Path]] = []
    for log in folder.glob("audiocnn-*.log"):
        try:
            ages.append((log.stat().st_mtime, log))
        except FileNotFoundError:
            continue
    for _, old in sorted(ages)[: max(0, len(ages) - MAX_LOG_FILES + 1)]:
        old.unlink(missing_ok=True)


_STARTED = time.strftime("%Y%m%d-%H%M%S")
