"""Build the background beds for `train.waveform.backgrounds`: real ambience from Debian packages.

Training clips mixed into ambience (`backgrounds:` in a recipe's `train.waveform`) learn to
ignore what a field recording has under its events. The beds must not be the benchmark's own
recordings, nor sound like any of ESC-50's 50 classes (a dog mixed into rain would teach
"rain" to the dog class), so they are steady machinery, hum and room ambience (no wind, rain,
water or fire, which are ESC-50 classes) from packages that the out-of-domain benchmark
(`ood/sources.csv`) does not use: nexuiz-data and openarena-data (GPL-2, Quake-engine
games; their sounds are kept in .pk3 zip files). Ten files, 1.5–12 s, looped by the mixer.

`backgrounds/sources.csv` names every file the same way `ood/sources.csv` does; this script
downloads the packages (`apt-get download`, kept in --debs) and extracts the files:

    .venv/bin/python benchmarks/background_beds.py --out ~/.cache/audiocnn/backgrounds
    audiocnn cv recipes/cpu.yaml ... --set train.waveform.backgrounds=~/.cache/audiocnn/backgrounds/none
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ood_set import build, read_sources, write_manifest  # noqa: E402 - a sibling benchmark script

SOURCES = Path(__file__).parent / "backgrounds" / "sources.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the beds (created); they land in OUT/none")
    parser.add_argument("--debs", type=Path, default=Path.home() / ".cache" / "audiocnn" / "debs",
                        help="where downloaded packages are kept")
    args = parser.parse_args()
    beds = read_sources(SOURCES)
    shared = {row["package"] for row in beds} & {row["package"] for row in read_sources()}
    if shared:
        raise SystemExit(f"{', '.join(sorted(shared))}: also a source of the out-of-domain benchmark")
    args.out.mkdir(parents=True, exist_ok=True)
    written = build(args.out, args.debs, beds)
    write_manifest(args.out, written, set())
    print(f"{len(written)} beds in {args.out / 'none'}")


if __name__ == "__main__":
    main()
