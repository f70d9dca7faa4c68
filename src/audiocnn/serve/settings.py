"""What a server is started with: the model, the limits, and who may call it.

Every number is range-checked when the settings are built, so a bad option is one line
(`--max-upload-mb inf` once gave a traceback): NaN, infinities, zero and negatives are
refused with the option's name and its range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from audiocnn.errors import ConfigError
from audiocnn.inference.options import RUNTIMES

#: (option, lowest, highest) of the numbers; a float range is exclusive at 0 (`0 <` value).
FLOAT_RANGES = (("max_upload_mb", 0.0, 1024.0 * 1024), ("max_seconds", 0.0, 7 * 86400.0),
                ("timeout_s", 0.0, 86400.0), ("upload_timeout_s", 0.0, 86400.0), ("header_timeout_s", 0.0, 3600.0),
                ("grace_s", 0.0, 3600.0), ("keep_mb", 0.0, 1024.0 * 1024), ("keep_minutes", 0.0, 7 * 1440.0),
                ("reviews_mb", 0.0, 1024.0 * 1024))
INT_RANGES = (("concurrency", 1, 256), ("queue", 0, 10_000), ("max_files", 1, 10_000), ("max_connections", 1, 65_535),
              ("keep_results", 0, 10_000))
#: The options' names on the command line, where they differ from the field's.
OPTION_NAMES = {"timeout_s": "--timeout", "upload_timeout_s": "--upload-timeout", "header_timeout_s": "--header-timeout",
                "grace_s": "--grace", "reviews_dir": "--reviews"}


@dataclass(frozen=True)
class ServeSettings:
    """The options of `audiocnn serve` (see its --help), checked when built."""

    model: Path | None = None  # a bundle folder; None = the bundled ESC-50 model
    runtime: str = "auto"  # as `predict --runtime`
    max_upload_mb: float = 200.0  # one request's body, all files together
    max_seconds: float = 3600.0  # longest recording accepted, per file, counted as it is decoded
    concurrency: int = 2  # requests classified at once (worker threads)
    queue: int = 16  # requests that may wait for a worker; one more is answered 503 (16 clients never are)
    timeout_s: float = 600.0  # a job still working after this is stopped and answered 504
    upload_timeout_s: float = 300.0  # a request's body must have arrived within this (408)
    header_timeout_s: float = 10.0  # a connection's request headers must have arrived within this
    grace_s: float = 3.0  # when told to stop, running requests get this long; then their jobs are stopped
    max_connections: int = 256  # open connections; the oldest idle one makes room for a new one
    max_files: int = 64  # files in one multipart request
    keep_results: int = 16  # results kept under an id (?keep=true) at once; 0 = none
    keep_mb: float = 512.0  # bytes of uploads the kept results hold together
    keep_minutes: float = 30.0  # a kept result unused this long is deleted
    reviews_dir: Path | None = None  # where reviews are saved (they outlive the server); None = the user's data folder
    reviews_mb: float = 2048.0  # bytes of recordings the saved reviews hold together
    api_key: str | None = None  # when set, every /v1 call and /metrics must send it
    allowed_hosts: tuple[str, ...] = ()  # Host header names answered; () = any (see server.allowed_hosts)

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"--runtime must be one of {', '.join(RUNTIMES)} (got {self.runtime!r})")
        for name, low, high in FLOAT_RANGES:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and low < value <= high):
                raise ConfigError(f"{option(name)} must be a number of more than {low:g} and at most {high:.10g} "
                                  f"(got {value!r})")
        for name, low, high in INT_RANGES:
            value = getattr(self, name)
            if not (isinstance(value, int) and low <= value <= high):
                raise ConfigError(f"{option(name)} must be {low}-{high} (got {value!r})")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError("--api-key must be at least 8 characters")

    @property
    def reviews_folder(self) -> Path:
        """--reviews, or `audiocnn/reviews` in the user's data folder (~/.local/share on Linux)."""
        if self.reviews_dir is not None:
            return Path(self.reviews_dir)
        import platformdirs

        return platformdirs.user_data_path("audiocnn", appauthor=False) / "reviews"

    @property
    def max_upload_bytes(self) -> int:
        """--max-upload-mb in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def upload_budget_bytes(self) -> int:
        """Bytes of uploads the server holds at once (arriving, waiting, being classified): past it, 503.

        A worker slot is taken only once an upload has arrived, so uploads in progress are bounded
        by bytes instead: every worker and waiting place full, and as much again arriving."""
        return self.max_upload_bytes * 2 * (self.concurrency + self.queue)


def option(name: str) -> str:
    """The command-line option of a settings field."""
    return OPTION_NAMES.get(name, "--" + name.replace("_", "-"))
