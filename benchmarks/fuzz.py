"""A long fuzz run of the readers of untrusted input: tests/test_fuzz.py's properties (damaged
audio in six containers, arbitrary recipe data and text, damaged bundle configs) with many
more examples than `make test` draws, and fresh random ones each run.

    .venv/bin/python benchmarks/fuzz.py --examples 3000 --json benchmarks/results/fuzz.json

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
    parser.add_argument("--json", type=Path, help="write the counts here")
    args = parser.parse_args()
    env = {**os.environ, "HYPOTHESIS_PROFILE": "long", "AUDIOCNN_FUZZ_EXAMPLES": str(args.examples)}
    started = time.time()
    run = subprocess.run([sys.executable, "-m", "pytest", "tests/test_fuzz.py", "-q", "-p", "no:cacheprovider",
                          "--hypothesis-show-statistics"], cwd=REPO, env=env, capture_output=True, text=True)
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
        record = {"command": f"benchmarks/fuzz.py --examples {args.examples}", "date": time.strftime("%Y-%m-%d"),
                  "machine": f"{platform.machine()}, {os.cpu_count()} cores", "seconds": round(seconds),
                  "result": verdict, "properties": properties}
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
