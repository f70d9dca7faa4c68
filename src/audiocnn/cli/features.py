"""`audiocnn features`: draw the spectrogram images a CNN sees, with Hz and s axes."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from audiocnn.cli.common import EXIT_ERROR, EXIT_OK, Commands, expand_paths, parse_overrides, report_failure
from audiocnn.errors import ConfigError


def add_commands(commands: Commands) -> None:
    """Add `features` (draw feature images of recordings) to the command line."""

    features = commands.add_parser(
        "features",
        help="draw spectrogram feature images of audio files",
        description="Draw the image a CNN sees for each audio file: one PNG per file and feature kind, "
        "with time (s) and frequency (Hz) axes and a colour bar.",
    )
    features.add_argument("audio", nargs="+", type=Path, help="audio files or folders (searched recursively)")
    features.add_argument("--kind", default="mel", choices=[*_pictures(), "all"], help="feature kind (default mel)")
    features.add_argument(
        "--out", type=Path, default=Path("out"),
        help="a .png path (one file, one kind) or a folder for <name>.<kind>.png (default out/)",
    )
    features.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                          help="frontend parameter, e.g. --set n_mels=64 --set sample_rate=22050 (repeatable)")
    features.add_argument("--offset", type=float, default=0.0, help="start at this many seconds")
    features.add_argument("--duration", type=float,
                          help="draw at most this many seconds (default: the whole file, up to 120 s)")
    features.set_defaults(handler=_features)


def _features(args: argparse.Namespace) -> int:
    from audiocnn.features import create_frontend
    from audiocnn.viz.features import feature_figure

    overrides = parse_overrides(args.overrides)
    if args.kind == "all":
        frontends = [create_frontend({"kind": kind, **_accepted(kind, overrides)}) for kind in _pictures()]
    else:
        frontends = [create_frontend({"kind": args.kind, **overrides})]
    files = expand_paths(args.audio)
    single_png = args.out.suffix.lower() == ".png"
    if single_png and (len(files) != 1 or len(frontends) != 1):
        raise ConfigError(f"--out {args.out}: a .png path takes one audio file and one kind; give a folder instead")

    failed = 0
    for path in files:
        for frontend in frontends:
            target = args.out if single_png else args.out / f"{path.stem}.{frontend.kind}.png"
            try:
                feature_figure(path, frontend, target, offset=args.offset, duration=args.duration)
            except Exception as err:  # noqa: BLE001 - one file's failure, whatever it is, is that file's alone
                report_failure(path, err)
                failed += 1
                break
            print(target)
    if failed:
        print(f"{len(files) - failed} file(s) drawn, {failed} failed", file=sys.stderr)
    return EXIT_ERROR if failed else EXIT_OK


def _accepted(kind: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """With `--kind all`, each kind gets the overrides it has (n_mfcc only to mfcc, ...);
    a key that no kind has is a typo and an error."""
    from audiocnn.features import FRONTENDS

    def names(k: str) -> set[str]:
        return {f.name for f in dataclasses.fields(FRONTENDS[k].params_type)}

    unknown = sorted(set(overrides) - set().union(*(names(k) for k in FRONTENDS)))
    if unknown:
        raise ConfigError(f"--set {', '.join(unknown)}: no feature kind has such a parameter")
    return {k: v for k, v in overrides.items() if k in names(kind)}


def _pictures() -> list[str]:
    """The frontends that draw a picture of sound (not BirdNET's embedding, which is no image to look at)."""
    from audiocnn.features import FRONTENDS

    return [kind for kind in FRONTENDS if FRONTENDS[kind].picture]
