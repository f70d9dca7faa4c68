"""Run `audiocnn ARGS...` and SIGKILL its own process at one named moment: a real kill, as the
out-of-memory killer or a pulled plug gives it, for the tests of resume (test_kill_resume.py).

    python tests/kill_at.py MOMENT -- ARGS...
    python tests/kill_at.py MOMENT MOMENT... -- ARGS...

MOMENT is one of
    before:PATTERN:N   just before the Nth file matching PATTERN (fnmatch on the full path) is
                       renamed into place: it is written whole under its temporary name, not yet
                       in place (every file the project trusts goes through `audiocnn.atomic`)
    after:PATTERN:N    just after that rename
    step:N             inside the Nth training step of this process (mid-epoch)
    end                no kill: the command runs to its end (a rerun after the kills)

A MOMENT may end in @DIR: that run works in folder DIR (relative paths in ARGS are then DIR's), so one
process can run an uninterrupted reference in one folder beside the killed runs in another.

With one MOMENT the command runs in this process. With several, it runs once per MOMENT, one run
after another, each in a child process forked from this one: every run starts afresh (nothing of
an earlier run is left in the child but what that run wrote to disk), and the seconds that a new
Python process spends importing torch and Lightning are spent once, here, before the first
fork. This process prints `kill_at: MOMENT: STATUS` as each run ends (STATUS as subprocess
gives it: -9 for SIGKILL, else the exit code) and exits 0 once all have run.

Nothing is mocked: the real CLI runs on real files and dies with SIGKILL, which it cannot
catch or clean up after.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import sys

from forking import start_forked, wait_for


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_around_rename(when: str, pattern: str, nth: int) -> None:
    rename = os.replace
    seen = 0

    def replace(src, dst, *args, **kwargs):
        nonlocal seen
        matched = fnmatch.fnmatch(os.path.abspath(dst), pattern)
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


def _arm(moment: str) -> None:
    """Make this process die at `moment` (nothing for `end`)."""
    kind, _, rest = moment.partition(":")
    if kind == "end":
        return
    if kind == "step":
        _kill_in_step(int(rest))
    else:
        pattern, _, nth = rest.rpartition(":")
        _kill_around_rename(kind, pattern, int(nth))


def _run(moment: str, args: list[str]) -> int:
    moment, _, folder = moment.partition("@")
    if folder:
        os.makedirs(folder, exist_ok=True)
        os.chdir(folder)
    _arm(moment)
    from audiocnn.cli import main as audiocnn

    return audiocnn(args)


def _forked(moment: str, args: list[str]) -> int:
    """Run the command in a child forked from this process, dying at `moment`; its end as subprocess gives it."""
    return wait_for(start_forked(lambda: _run(moment, args)))


def main() -> int:
    separator = sys.argv.index("--") if "--" in sys.argv else 0
    moments, args = sys.argv[1:separator], sys.argv[separator + 1 :]
    assert moments and separator, __doc__
    if len(moments) == 1:
        return _run(moments[0], args)
    # What the runs import, imported once before the first fork (imports only: nothing has run yet).
    import audiocnn.cli  # noqa: F401
    import audiocnn.training.cv  # noqa: F401
    import audiocnn.training.module  # noqa: F401
    import audiocnn.training.reports  # noqa: F401

    for moment in moments:
        print(f"kill_at: {moment}: {_forked(moment, args)}", flush=True)
    os._exit(0)  # nothing here to clean up: the interpreter's teardown of torch would only add a second


if __name__ == "__main__":
    sys.exit(main())
