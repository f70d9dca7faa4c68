"""Run `audiocnn ARGS...` and SIGKILL its own process at one named moment: a real kill, as the
out-of-memory killer or a pulled plug gives it, for the tests of resume (test_kill_resume.py).

    python tests/kill_at.py MOMENT -- ARGS...

MOMENT is one of
    before:PATTERN:N   just before the Nth file matching PATTERN (fnmatch on the full path) is
                       renamed into place: it is written whole under its temporary name, not yet
                       in place (every file the project trusts goes through `audiocnn.atomic`)
    after:PATTERN:N    just after that rename
    step:N             inside the Nth training step of this process (mid-epoch)

Nothing is mocked: the real CLI runs on real files and dies with SIGKILL, which it cannot
catch or clean up after.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import sys


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_around_rename(when: str, pattern: str, nth: int) -> None:
    rename = os.replace
    seen = 0

    def replace(src, dst, *args, **kwargs):
        nonlocal seen
        matched = fnmatch.fnmatch(os.fspath(dst), pattern)
        seen += matched
        if matched and seen == nth and when == "before":
            _die()
        rename(src, dst, *args, **kwargs)
        if matched and seen == nth and when == "after":
            _die()

    os.replace = replace


def _kill_in_step(nth: int) -> None:
    from audiocnn.training.module import LitClassifier

    step = LitClassifier.training_step
    seen = 0

    def training_step(self, batch, index):
        nonlocal seen
        seen += 1
        if seen == nth:
            _die()
        return step(self, batch, index)

    LitClassifier.training_step = training_step


def main() -> int:
    moment, separator, *args = sys.argv[1:]
    assert separator == "--", __doc__
    kind, _, rest = moment.partition(":")
    if kind == "step":
        _kill_in_step(int(rest))
    else:
        pattern, _, nth = rest.rpartition(":")
        _kill_around_rename(kind, pattern, int(nth))
    from audiocnn.cli import main as audiocnn

    return audiocnn(args)


if __name__ == "__main__":
    sys.exit(main())
