"""What a server is started with: the model, the limits, and who may call it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from audiocnn.errors import ConfigError

RUNTIMES = ("auto", "onnx", "torch", "int8")


@dataclass(frozen=True)
class ServeSettings:
    """The options of `audiocnn serve` (see its --help), checked when built."""

    model: Path | None = None  # a bundle folder; None = the bundled ESC-50 model
    runtime: str = "auto"  # as `predict --runtime`
    max_upload_mb: float = 200.0  # one request's body, all files together
    max_seconds: float = 3600.0  # longest recording accepted, per file
    concurrency: int = 2  # requests classified at once (worker threads)
    queue: int = 8  # requests that may wait for a worker; one more is answered 503
    timeout_s: float = 600.0  # a request still working after this is answered 504
    max_files: int = 64  # files in one multipart request
    api_key: str | None = None  # when set, every /v1 call and /metrics must send it

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"--runtime must be one of {', '.join(RUNTIMES)} (got {self.runtime!r})")
        for name, low in (("max_upload_mb", 0.0), ("max_seconds", 0.0), ("timeout_s", 0.0)):
            if not getattr(self, name) > low:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive (got {getattr(self, name)!r})")
        if not 1 <= self.concurrency <= 256:
            raise ConfigError(f"--concurrency must be 1-256 (got {self.concurrency})")
        if not 0 <= self.queue <= 10_000:
            raise ConfigError(f"--queue must be 0-10000 (got {self.queue})")
        if not 1 <= self.max_files <= 10_000:
            raise ConfigError(f"--max-files must be 1-10000 (got {self.max_files})")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError("--api-key must be at least 8 characters")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
