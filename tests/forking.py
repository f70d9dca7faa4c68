"""Run a function in a child forked from this process, for the test scripts that import torch and
Lightning once and then need several processes (tests/kill_at.py, tests/ddp_worker.py): a fork
costs nothing, a fresh interpreter seconds of imports."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable


def start_forked(call: Callable[[], int | None]) -> int:
    """Fork; the child runs `call()` and exits with its code (None: 0; an uncaught exception is
    printed, as Python would, and exits 1; `SystemExit` keeps its code) and never returns here.
    Returns the child's pid, for `wait_for`."""
    sys.stdout.flush()
    sys.stderr.flush()  # else the child would write this process's buffered output a second time
    child = os.fork()
    if child == 0:
        try:
            code = call() or 0
        except SystemExit as stop:  # argparse's way out
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:  # noqa: BLE001 - shown, as an uncaught exception would be
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return child


def wait_for(child: int) -> int:
    """A forked child's end as subprocess gives it: its exit code, or minus the signal that killed it."""
    return os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
