"""Fault injection for the "one item never stops the rest" tests.

Real code runs on real files; one call inside it raises an exception no code foresees
(`InjectedFault`, a plain RuntimeError), but only for items whose name holds `MARKER`, as a
library's surprise on one odd file would. In this process `inject` patches with pytest's
monkeypatch; `environment` gives the variables that make a child process (the CLI, its
worker processes) patch itself at start-up, through a `sitecustomize` module.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Items whose name holds this fail; every other item must come through untouched.
MARKER = "boom"


class InjectedFault(RuntimeError):
    """What the patched call raises: not an AudiocnnError, so nothing handles it as a known problem."""


def failing_for(function: Callable[..., Any], marker: str = MARKER) -> Callable[..., Any]:
    """`function`, raising `InjectedFault` when any argument's text holds `marker`."""

    @functools.wraps(function)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if any(marker in str(value) for value in (*args, *kwargs.values())):
            raise InjectedFault(f"injected fault in {function.__qualname__}")
        return function(*args, **kwargs)

    return wrapped


def _owner(target: str) -> tuple[Any, str]:
    """`"pkg.module:Class.method"` -> (Class, "method")."""
    module, _, attribute = target.partition(":")
    *path, name = attribute.split(".")
    owner: Any = importlib.import_module(module)
    for part in path:
        owner = getattr(owner, part)
    return owner, name


def patch(target: str, marker: str = MARKER) -> None:
    """Make `target` fail for `marker` in this process (what the child's sitecustomize calls)."""
    owner, name = _owner(target)
    setattr(owner, name, failing_for(getattr(owner, name), marker))


def inject(monkeypatch: Any, target: str, marker: str = MARKER) -> None:
    """`patch`, undone when the test ends."""
    owner, name = _owner(target)
    monkeypatch.setattr(owner, name, failing_for(getattr(owner, name), marker))


def environment(folder: Path, target: str, marker: str = MARKER) -> dict[str, str]:
    """Variables for a child process (and the processes it spawns) in which `target` fails for `marker`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(f"import faults\nfaults.patch({target!r}, {marker!r})\n")
    here = str(Path(__file__).parent)
    paths = [str(folder), here, os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
