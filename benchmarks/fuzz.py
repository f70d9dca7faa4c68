"""A long fuzz run of the readers of untrusted input: tests/test_fuzz.py's properties (damaged
audio in six containers, tags and chunks in any bytes, arbitrary recipe data and text, damaged
bundle configs, result tables for `merge`, annotation tables) with many more examples than
`make test` draws, and fresh random ones each run.

    .venv/bin/python benchmarks/fuzz.py --examples 3000 --json benchmarks/results/fuzz.json
    .venv/bin/python benchmarks/fuzz.py --examples 10000 --only "merge or annotation or tags_and_chunks" \
        --json benchmarks/results/fuzz_tables.json

Prints, and records, each property's passing and failing example counts and time; a failing
property prints hypothesis's smallest failing input (add it to the tests, then fix the reader).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_STATS = re.compile(r"^(tests/test_fuzz\.py::\S+):\s*$|(\d+) passing, (\d+) failing", re.MULTILINE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=3000, help="examples per property (default 3000)")
    parser.add_argument("--only", metavar="EXPR", help="only the properties pytest's -k EXPR selects")
    parser.add_argument("--json", type=Path, help="write the counts here")
    args = parser.parse_args()
    env = {**os.environ, "HYPOTHESIS_PROFILE": "long", "AUDIOCNN_FUZZ_EXAMPLES": str(args.examples)}
    started = time.time()
    select = ["-k", args.only] if args.only else []
    run = subprocess.run([sys.executable, "-m", "pytest", "tests/test_fuzz.py", "-q", "-p", "no:cacheprovider",
                          "--hypothesis-show-statistics", *select], cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.time() - started
    properties: dict[str, dict[str, int]] = {}
    current = None
    for match in _STATS.finditer(run.stdout):
        if match.group(1):
            current = match.group(1).split("::")[1]
        elif current and current not in properties:
            properties[current] = {"passing": int(match.group(2)), "failing": int(match.group(3))}
    for name, counts in properties.items():
        print(f"{name}: {counts['passing']} passing, {counts['failing']} failing")
    verdict = "passed" if run.returncode == 0 else "FAILED"
    print(f"{verdict} in {seconds:.0f} s")
    if run.returncode:
        print(run.stdout[-6000:])
    if args.json:
        command = f"benchmarks/fuzz.py --examples {args.examples}" + (f" --only {args.only!r}" if args.only else "")
        record = {"command": command, "date": time.strftime("%Y-%m-%d"),
                  "machine": f"{_cpu_model()}, {platform.machine()}, {os.cpu_count()} cores", "seconds": round(seconds),
                  "result": verdict, "properties": properties}
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return run.returncode


def _cpu_model() -> str:
    """The processor's name, as `lscpu` shows it (Linux), or the platform's word for it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown processor"


if __name__ == "__main__":
    sys.exit(main())
