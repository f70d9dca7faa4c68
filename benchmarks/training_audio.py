"""Build the extra training audio from Debian packages: background beds, and outliers.

Two kinds, each listed file by file in `<kind>/sources.csv` (the same columns as the
out-of-domain benchmark's `ood/sources.csv`), from packages that benchmark does not use, so
nothing a model trains on comes from a source it is judged on:

- **backgrounds** (`train.waveform.backgrounds`): real ambience that training clips are mixed
  into. They must not sound like any of ESC-50's 50 classes (a dog mixed into rain would teach
  "rain" to the dog class), so they are steady machinery, hum and room ambience (no wind, rain,
  water or fire, which are ESC-50 classes) from nexuiz-data and openarena-data (GPL-2,
  Quake-engine games; their sounds are kept in .pk3 zip files): 10 files, 1.5-12 s.
- **outliers** (`train.outliers`): sounds that are none of the 50, which the model learns to
  be unsure about (outlier exposure): 600 spoken words in 12 languages from KTuberling
  (ktuberling-data, GPL-2+, the objects' names read by people), 12 minutes of game music
  (xmoto-data, chromium-bsu-data), and, from the Quake-engine games (nexuiz-data,
  openarena-data; none of their files is also a bed), 70 pain and death cries of 8 player
  voices, 46 tuba notes, 13 gunshots and 15 machinery, hum, steam and static sounds.
  Outlier exposure teaches doubt only for the kinds of sound it is shown.

The packages are downloaded with `apt-get download` (kept in --debs) and the files extracted:

    .venv/bin/python benchmarks/training_audio.py backgrounds --out ~/.cache/audiocnn/backgrounds
    .venv/bin/python benchmarks/training_audio.py outliers --out ~/.cache/audiocnn/outliers
    audiocnn cv recipes/cpu.yaml ... --set train.waveform.backgrounds=~/.cache/audiocnn/backgrounds/none \\
        --set train.outliers.folder=~/.cache/audiocnn/outliers/none
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ood_set import build, read_sources, write_manifest  # noqa: E402 - a sibling benchmark script

KINDS = ("backgrounds", "outliers")


def sources(kind: str) -> list[dict[str, str]]:
    """The files of one kind; refused if a package is also a source of the out-of-domain benchmark."""
    rows = read_sources(Path(__file__).parent / kind / "sources.csv")
    shared = {row["package"] for row in rows} & {row["package"] for row in read_sources()}
    if shared:
        raise SystemExit(f"{', '.join(sorted(shared))}: also a source of the out-of-domain benchmark")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--out", type=Path, required=True, help="folder to build in (created); the files land in OUT/none")
    parser.add_argument("--debs", type=Path, default=Path.home() / ".cache" / "audiocnn" / "debs",
                        help="where downloaded packages are kept")
    args = parser.parse_args()
    rows = sources(args.kind)
    args.out.mkdir(parents=True, exist_ok=True)
    written = build(args.out, args.debs, rows)
    write_manifest(args.out, written, set())
    print(f"{len(written)} {args.kind} files in {args.out / 'none'}")


if __name__ == "__main__":
    main()
