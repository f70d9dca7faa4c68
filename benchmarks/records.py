"""What a benchmark measured, shown and kept: printed as JSON, and written to `--json` when given, so
that BENCHMARKS.md can name the file each figure comes from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def publish(record: dict[str, Any], path: Path | None) -> None:
    """Print `record` and, when `path` is given, write it there (folders made as needed)."""
    text = json.dumps(record, indent=2) + "\n"
    print(text, end="")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
