"""The out-of-domain set builder (benchmarks/ood_set.py) on small packages built in the test, and
its sources list against what the benchmark promises (issue 18)."""

from __future__ import annotations

import importlib.util
import io
import re
import struct
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from audiocnn.datasets.esc50 import CLASSES
from test_real_world_set import _deb, _rcc

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("ood_set", ROOT / "benchmarks" / "ood_set.py")
ood_set = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ood_set)


def _catalogue(entries: list[tuple[str, bytes]]) -> bytes:
    """An OpenTTD sound catalogue: (offset | 1 << 31, size) pairs, then each entry's
    length-prefixed name and its WAV (`size` counts the WAV only), with padding between."""
    table, body = b"", b""
    start = 8 * len(entries)
    for name, wav in entries:
        offset = start + len(body)
        table += struct.pack("<II", offset | 1 << 31, len(wav))
        body += bytes([len(name)]) + name.encode() + wav + b"\0" * 22
    return table + body


def test_catalogue_entries_are_whole_wavs():
    wavs = [("Good Year", b"RIFF" + b"a" * 50), ("Ship horn", b"RIFF" + b"b" * 70)]
    catalogue = _catalogue(wavs)
    assert [ood_set.opensfx_entry(catalogue, i) for i in range(2)] == [wav for _, wav in wavs]
    with pytest.raises(SystemExit, match="has 2 entries, not #2"):
        ood_set.opensfx_entry(catalogue, 2)


@pytest.mark.parametrize("member, parts", [
    ("usr/share/a/b.ogg", ("usr/share/a/b.ogg", "")),
    ("usr/share/x.rcc:/res/dog.wav", ("usr/share/x.rcc", "/res/dog.wav")),
    ("usr/share/p/public.zip:audio/rain.ogg", ("usr/share/p/public.zip", "audio/rain.ogg")),
    ("usr/share/o/opensfx.cat#12", ("usr/share/o/opensfx.cat", "#12")),
    ("usr/share/c/Sound.ocg/Animals.ocg/Cow.ogg", ("usr/share/c/Sound.ocg", "Animals.ocg/Cow.ogg")),
])
def test_members_name_their_container(member, parts):
    assert ood_set.split_member(member) == parts


def test_build_takes_files_out_of_every_kind_of_container(tmp_path):
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("audio/rain.ogg", b"OggS-rain")
    debs = tmp_path / "debs"
    debs.mkdir()
    (debs / "game-data_2.0-1_all.deb").write_bytes(_deb({
        "usr/share/game/cow.wav": b"RIFF-cow",
        "usr/share/game/sounds.rcc": _rcc({"dog.wav": b"RIFF-dog", "voice.ogg": b"OggS-voice"}),
        "usr/share/game/public.zip": zipped.getvalue(),
        "usr/share/game/opensfx.cat": _catalogue([("Horn", b"RIFF-horn"), ("Plane", b"RIFF-plane")]),
        "usr/share/game/Music.ocg/Theme.ogg": b"OggS-music",  # an .ocg that is a plain folder
    }))
    rows = [{"package": "game-data", "version": "2.0-1", "member": member, "class": cls}
            for member, cls in [("usr/share/game/cow.wav", "cow"),
                                ("usr/share/game/sounds.rcc:/res/dog.wav", "dog"),
                                ("usr/share/game/sounds.rcc:/res/voice.ogg", "none:speech"),
                                ("usr/share/game/public.zip:audio/rain.ogg", "rain"),
                                ("usr/share/game/opensfx.cat#1", "airplane"),
                                ("usr/share/game/Music.ocg/Theme.ogg", "none:music")]]
    written = ood_set.write_manifest(tmp_path / "set", ood_set.build(tmp_path / "set", debs, rows), set())
    files = {row["file"]: (tmp_path / "set" / row["file"]).read_bytes() for row in written}
    assert sorted(files.values()) == sorted([b"RIFF-cow", b"RIFF-dog", b"OggS-voice", b"OggS-rain", b"RIFF-plane",
                                             b"OggS-music"])
    assert Counter(row["file"].split("/")[0] for row in written) == {"cow": 1, "dog": 1, "none": 2, "rain": 1,
                                                                     "airplane": 1}
    assert {row["what"] for row in written if row["class"] == "none"} == {"speech", "music"}
    assert all(row["file"].split("/")[1].startswith("game-data--") for row in written)
    rows[0] = {**rows[0], "member": "usr/share/game/missing.wav"}
    with pytest.raises(SystemExit, match="no usr/share/game/missing.wav"):
        ood_set.build(tmp_path / "set2", debs, rows)


def test_the_sources_list_keeps_the_benchmarks_promises():
    rows = ood_set.read_sources()
    known = [row for row in rows if not row["class"].startswith("none")]
    assert {row["class"] for row in known} <= set(CLASSES)
    assert len(known) >= 300 and len({row["class"] for row in known}) >= 30
    assert len(rows) - len(known) >= 100 and all(row["class"].startswith("none:") for row in rows if row not in known)
    assert len({row["package"] for row in known}) >= 5
    assert len({(row["package"], row["member"]) for row in rows}) == len(rows)  # nothing listed twice
    assert not {row["package"] for row in rows} & {"scratch", "megaglest-data"}  # kept for an independent check
    assert all(row["evidence"] for row in rows)  # every class says what decided it
    # looser mappings (applause -> clapping, ox -> cow, ...) are marked, so they can be scored apart
    assert {row["mapping"] for row in known} == {"exact", "loose"} and not any(
        row["mapping"] for row in rows if row not in known)
    assert sum(row["mapping"] == "exact" for row in known) >= 0.9 * len(known)


@pytest.mark.parametrize("kind", ["backgrounds", "outliers"])
def test_the_training_audio_shares_no_source_with_the_benchmark(kind):
    rows = ood_set.read_sources(ROOT / "benchmarks" / kind / "sources.csv")
    assert rows and not {row["package"] for row in rows} & {row["package"] for row in ood_set.read_sources()}
    assert all(row["class"].startswith("none:") and row["evidence"] for row in rows)
    assert len({(row["package"], row["member"]) for row in rows}) == len(rows)


def test_no_background_bed_is_one_of_the_50():
    # A bed that is one of the 50 (rain, wind, water, fire...) would teach its class to every clip mixed into it.
    for row in ood_set.read_sources(ROOT / "benchmarks" / "backgrounds" / "sources.csv"):
        words = set(re.split(r"[^a-z]+", (row["class"] + " " + row["member"]).lower()))
        assert not [name for name in CLASSES if set(name.split("_")) <= words], row["member"]


def test_outliers_are_none_of_the_50_and_no_background_bed():
    # Outliers are taught as "none of the classes": a class among them would be taught as unknown; a file
    # that is also a bed would be taught both as "nothing" under every clip and as "unknown" alone.
    outliers = ood_set.read_sources(ROOT / "benchmarks" / "outliers" / "sources.csv")
    for row in outliers:
        words = set(re.split(r"[^a-z]+", row["class"].lower()))
        assert not [name for name in CLASSES if set(name.split("_")) <= words], row["member"]
    beds = ood_set.read_sources(ROOT / "benchmarks" / "backgrounds" / "sources.csv")
    assert not {row["member"] for row in outliers} & {row["member"] for row in beds}
    kinds = {row["class"].split(" (")[0] for row in outliers}
    assert {"none:speech", "none:music", "none:gunshot", "none:machinery"} <= kinds
