"""The real-world set builder reads Debian packages and Qt resource bundles without dpkg or Qt.

`benchmarks/real_world_set.py` takes its recordings out of .deb files (ar archives around a
data.tar.xz) and, for GCompris, out of the .rcc bundles inside them. Both readers run here on
small archives built in the test, in the formats' documented layouts; the set's sources list
is checked for what the benchmark promises (ESC-50 classes, nothing twice).
"""

from __future__ import annotations

import importlib.util
import io
import struct
import tarfile
import zlib
from pathlib import Path

import pytest

from audiocnn.datasets.esc50 import CLASSES

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("real_world_set", ROOT / "benchmarks" / "real_world_set.py")
real_world_set = importlib.util.module_from_spec(spec)
spec.loader.exec_module(real_world_set)


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, body in members.items():
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body
        out += b"\n" if len(body) % 2 else b""
    return out


def _deb(files: dict[str, bytes]) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for path, body in files.items():
            info = tarfile.TarInfo(f"./{path}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return _ar({"debian-binary": b"2.0\n", "control.tar.xz": b"", "data.tar.xz": data.getvalue()})


def _rcc(files: dict[str, bytes]) -> bytes:
    """A format-1 .rcc with the files in one folder `/res`, the second one zlib-compressed."""
    names, name_offsets = b"", {}
    for name in ["res", *files]:
        name_offsets[name] = len(names)
        names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
    data, data_offsets, flags = b"", {}, {}
    for index, (name, body) in enumerate(files.items()):
        compressed = index == 1
        stored = struct.pack(">I", len(body)) + zlib.compress(body) if compressed else body
        data_offsets[name], flags[name] = len(data), int(compressed)
        data += struct.pack(">I", len(stored)) + stored
    tree = struct.pack(">IHII", 0, 2, 1, 1)  # root: a directory with one child, node 1
    tree += struct.pack(">IHII", name_offsets["res"], 2, len(files), 2)
    for name in files:
        tree += struct.pack(">IHHHI", name_offsets[name], flags[name], 0, 0, data_offsets[name])
    header = 20
    return b"qres" + struct.pack(">IIII", 1, header, header + len(tree), header + len(tree) + len(data)) + tree + data + names


def test_deb_members_returns_the_asked_files_and_names_a_missing_one(tmp_path):
    deb = tmp_path / "pkg_1.0_all.deb"
    deb.write_bytes(_deb({"usr/share/a.ogg": b"OggS-a", "usr/share/b.wav": b"RIFF-b", "usr/share/c.txt": b"c"}))
    assert real_world_set.deb_members(deb, {"usr/share/a.ogg", "usr/share/b.wav"}) == {
        "usr/share/a.ogg": b"OggS-a", "usr/share/b.wav": b"RIFF-b"}
    with pytest.raises(SystemExit, match="no usr/share/d.ogg"):
        real_world_set.deb_members(deb, {"usr/share/d.ogg"})
    not_a_deb = tmp_path / "x.deb"
    not_a_deb.write_bytes(b"PK\x03\x04")
    with pytest.raises(SystemExit, match="not a .deb"):
        real_world_set.deb_members(not_a_deb, {"a"})


def test_rcc_files_reads_plain_and_compressed_resources():
    files = {"cat.ogg": b"OggS" + bytes(range(200)), "dog.wav": b"RIFF" + b"\x01" * 300}
    assert real_world_set.rcc_files(_rcc(files)) == {f"/res/{name}": body for name, body in files.items()}
    with pytest.raises(ValueError, match="not a Qt .rcc"):
        real_world_set.rcc_files(b"RIFF....")


def test_the_sources_list_names_esc50_classes_and_no_file_twice():
    rows = real_world_set.read_sources()
    assert len(rows) == 38
    assert {row["class"] for row in rows} <= set(CLASSES)
    assert len({(row["package"], row["member"]) for row in rows}) == len(rows)


def test_build_names_each_file_by_class_and_says_which_resource_is_missing(tmp_path, monkeypatch):
    debs = tmp_path / "debs"
    debs.mkdir()
    rcc = _rcc({"cat.ogg": b"OggS-cat", "dog.wav": b"RIFF-dog"})
    (debs / "fake_1.0_all.deb").write_bytes(_deb({"usr/share/a.rcc": rcc, "usr/share/hen.ogg": b"OggS-hen"}))
    sources = tmp_path / "sources.csv"
    sources.write_text("package,version,member,class\n"
                       "fake,1.0,usr/share/hen.ogg,hen\n"
                       "fake,1.0,usr/share/a.rcc:/res/dog.wav,dog\n")
    monkeypatch.setattr(real_world_set, "SOURCES", sources)
    written = real_world_set.build(tmp_path / "out", debs)
    assert [w["file"] for w in written] == ["hen-fake-hen.ogg", "dog-fake-dog.wav"]
    assert (tmp_path / "out" / "dog-fake-dog.wav").read_bytes() == b"RIFF-dog"
    sources.write_text("package,version,member,class\nfake,1.0,usr/share/a.rcc:/res/cow.ogg,cow\n")
    with pytest.raises(SystemExit, match="usr/share/a.rcc has no /res/cow.ogg"):
        real_world_set.build(tmp_path / "out2", debs)
