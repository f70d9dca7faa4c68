"""Fuzzing the readers of untrusted input: audio files (their tags and chunks too), recipes, bundle
configs, result tables (`merge`), annotation tables (hypothesis).

Each property says what a reader may do with any input: return a valid result, or raise its
one error type (`AudioError`, `ConfigError`, `BundleError`, `DatasetError`) whose message names
the file, or (tables) list one line per bad table or row.
Anything else (another exception, a NaN in the output) is a bug. The inputs are valid files
damaged the ways disks, networks and people damage them: bytes flipped, cut, inserted, and
header fields overwritten with extreme values; settings with every kind of wrong value.

A bounded run is part of `make test` (the `ci` profile: fixed examples, about 20 s); the
`long` profile (`HYPOTHESIS_PROFILE=long`, or benchmarks/fuzz.py) draws many more.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audiocnn import audio, bundle
from audiocnn.config import read_recipe_yaml, recipe_from_dict
from audiocnn.datasets import load_dataset
from audiocnn.errors import AudioError, BundleError, ConfigError, DatasetError
from audiocnn.inference.formats import SUFFIXES, PredictionWriter, spreadsheet_text
from audiocnn.inference.options import OutputOptions
from audiocnn.inference.predictor import FilePrediction
from audiocnn.inference.tables import merge, read_csv, read_raven
from test_audio import _id3v2, _mp3_in_wav

_COMMON = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=60, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=int(os.environ.get("AUDIOCNN_FUZZ_EXAMPLES", "3000")), **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
pytestmark = pytest.mark.filterwarnings("ignore::audiocnn.errors.AudiocnnWarning")  # warnings are allowed results


def _encoded(fmt: str, subtype: str | None, rate: int, channels: int) -> bytes:
    t = np.arange(int(0.2 * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t)
    buffer = io.BytesIO()
    sf.write(buffer, np.repeat(wave[:, None], channels, axis=1), rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


#: Valid files the fuzzer damages: one per container the loader reads.
SEEDS = {
    "pcm16.wav": _encoded("WAV", "PCM_16", 16_000, 1),
    "float.wav": _encoded("WAV", "FLOAT", 22_050, 2),
    "clip.flac": _encoded("FLAC", "PCM_16", 16_000, 2),
    "clip.ogg": _encoded("OGG", "VORBIS", 22_050, 1),
    "clip.mp3": _encoded("MP3", "MPEG_LAYER_III", 44_100, 1),
    "clip.aiff": _encoded("AIFF", "PCM_24", 8_000, 1),
}


@st.composite
def damages(draw: st.DrawFn) -> tuple[str, list[tuple]]:
    """A seed file's name and the damage done to it: (kind, position, value) steps, so a failing
    case prints as a short recipe rather than 100 kB of bytes."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "header-field"]))
        position = draw(st.integers(0, 96) if kind == "header-field" else st.integers(0, 1 << 16))
        value = {"flip": st.integers(1, 255), "cut": st.integers(1, 4096), "insert": st.binary(min_size=1, max_size=64),
                 "header-field": st.tuples(st.sampled_from([0, 1, 2, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000]),
                                           st.sampled_from(["little", "big"]))}[kind]
        steps.append((kind, position, draw(value)))
    return name, steps


def damaged(name: str, steps: list[tuple]) -> bytes:
    data = bytearray(SEEDS[name])
    for kind, position, value in steps:
        position = min(position, max(0, len(data) - (4 if kind == "header-field" else 1)))
        if kind == "flip" and data:
            data[position] ^= value
        elif kind == "cut":
            data = data[:position] + data[position + value:]
        elif kind == "insert":
            data[position:position] = value
        elif kind == "header-field":  # sizes, rates, channel counts: the numbers a reader allocates from
            data[position:position + 4] = value[0].to_bytes(4, value[1])
    return bytes(data)


@given(damages())
@example(("float.wav", [("insert", 86, b"\x00"), ("cut", 704, 1)]))  # found by fuzzing: samples of 1e38 overflowed
@pytest.mark.slow
def test_damaged_audio_loads_or_is_one_audio_error(tmp_path, case):
    name, steps = case
    path = tmp_path / f"fuzzed-{name}"
    path.write_bytes(damaged(name, steps))
    for read in (lambda: audio.load(path, 16_000), lambda: np.concatenate([np.zeros(0, np.float32),
                                                                          *audio.stream(path, 16_000, block_seconds=0.05)])):
        try:
            wave = read()
        except AudioError as err:
            assert str(err).startswith(str(path)) and "\n" not in str(err)
            continue
        assert wave.dtype == np.float32 and wave.ndim == 1 and np.isfinite(wave).all()


KEYS = {
    "data": ["dataset", "clip_seconds", "val_fraction", "folds", "seed", "limit_per_class", "split"],
    "frontend": ["kind", "n_mels", "sample_rate", "win_ms", "hop_ms", "fmin", "fmax", "top_db", "n_mfcc", "height"],
    "model": ["backbone", "weights", "drop_rate"],
    "train": ["epochs", "batch_size", "lr", "optimizer", "schedule", "warmup_epochs", "mixup", "precision", "select",
              "threads", "devices", "strategy", "specaugment", "waveform", "deterministic", "seed"],
}
WILD = st.deferred(lambda: st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["mel", "mfcc", "multires", "gammatone", "logspec", "esc50", "folder", "adamw", "1e-3", "auto",
                     "resnet10t", "none", "best-val"]),
    st.lists(WILD, max_size=3), st.dictionaries(st.text(max_size=6), WILD, max_size=3)))


@st.composite
def wild_recipes(draw: st.DrawFn) -> dict:
    recipe: dict = {}
    for section in draw(st.lists(st.sampled_from([*KEYS, "extra"]), max_size=5, unique=True)):
        keys = KEYS.get(section, ["x"])
        recipe[section] = draw(st.one_of(WILD, st.dictionaries(st.sampled_from(keys), WILD, max_size=4)))
    return recipe


@given(wild_recipes())
@example({"train": 1})  # found by fuzzing: TypeError
@example({"data": {"\n": None}, "frontend": {3: 1}})  # found by fuzzing: a two-line message; a non-string key
@pytest.mark.slow
def test_any_recipe_data_is_a_recipe_or_one_config_error(recipe):
    try:
        built = recipe_from_dict(recipe, "fuzzed.yaml")
    except ConfigError as err:
        assert str(err).startswith("fuzzed.yaml") and "\n" not in str(err)
        return
    assert 0 < built.data.clip_seconds <= 600 and math.isfinite(built.train.lr)


YAML_PIECES = st.sampled_from(["train:", "data:", "\n", "  ", "- ", "&a ", "*a", "[", "]", "{", "}", ": ", "? ",
                               "!!python/object:os.system", "!!binary", "lr: 1e-3", "'", '"', "#", "\t", "---", "..."])


@given(st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode),
                 st.lists(YAML_PIECES, max_size=40).map(lambda parts: "".join(parts).encode())))
@pytest.mark.slow
def test_any_recipe_text_is_a_mapping_or_one_config_error(tmp_path, text):
    path = tmp_path / "fuzzed.yaml"
    path.write_bytes(text)
    try:
        raw = read_recipe_yaml(path)
    except ConfigError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err)
        return
    assert isinstance(raw, dict)


@pytest.fixture(scope="module")
def bundle_config(tone_bundle: Path) -> dict:
    return json.loads((tone_bundle / "config.json").read_text())


def _leaves(node: object, path: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        return [path] + [leaf for key, value in node.items() for leaf in _leaves(value, (*path, key))]
    if isinstance(node, list):
        return [path] + [leaf for i, value in enumerate(node[:3]) for leaf in _leaves(value, (*path, i))]
    return [path]


@given(st.data())
@pytest.mark.slow
def test_any_damaged_bundle_config_loads_or_is_one_bundle_error(tmp_path, tone_bundle, bundle_config, data):
    config = json.loads(json.dumps(bundle_config))
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(_leaves(config)[1:]))
        parent = config
        for key in where[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()):
            parent[where[-1]] = data.draw(WILD)
        elif isinstance(parent, dict):
            del parent[where[-1]]
    folder = tmp_path / "fuzzed-bundle"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    try:
        loaded = bundle.load(folder, backbone=False)
    except BundleError as err:
        assert str(folder) in str(err) and "\n" not in str(err)
        return
    assert loaded.labels and all(isinstance(label, str) for label in loaded.labels)
    assert np.isfinite(loaded.model.mean.numpy()).all() and (loaded.model.std.numpy() > 0).all()


def test_the_seeds_are_valid_files(tmp_path):
    """The fuzzer's starting points load: otherwise it would only ever test refusals."""
    for suffix, data in SEEDS.items():
        path = tmp_path / f"seed.{suffix}"
        path.write_bytes(data)
        assert len(audio.load(path, 16_000)) > 0.15 * 16_000


# ----------------------------------------------------------------------------- result tables (merge)

#: Text for names: anything a file name may hold (no NUL, no `/`), line breaks of every kind included.
NAME_TEXT = st.text(st.characters(exclude_characters="\x00/", exclude_categories=["Cs"]), min_size=1, max_size=10)
ROW_FORMATS = ("raven", "csv", "scores", "kaleidoscope")


def _prediction(name: str, labels: list[str]) -> FilePrediction:
    return FilePrediction(Path(f"site/{name}.wav"), 2.0, labels, np.array([0.0, 1.0]), np.array([1.0, 2.0]),
                          np.array([[0.7, 0.3], [0.4, 0.6]]))


def _result_table(fmt: str, names: list[str], labels: list[str]) -> bytes:
    """A result table as `predict` writes it."""
    stream = io.StringIO(newline="")
    writer = PredictionWriter(stream, OutputOptions(format=fmt, top_k=2), labels=labels)
    for name in names:
        writer.add(_prediction(name, labels), Path("site"))
    writer.close()
    return stream.getvalue().encode()


def _one_line_failures(failures: list[str], bad: Path) -> None:
    for line in failures:
        assert line.startswith(str(bad)) and "\n" not in line and "internal error" not in line, line


@given(st.sampled_from(ROW_FORMATS), st.lists(NAME_TEXT, min_size=1, max_size=3, unique=True),
       st.lists(NAME_TEXT, min_size=2, max_size=2, unique=True))
@example("raven", ["a\u2028b", "c\x85d", "e\x0cf"], ["=x", "y\r\nz"])  # splitlines breaks: merge crashed on them
@example("scores", ["0"], ["0", "file"])  # found by fuzzing: a class named `file` hid the file column from read_csv
@example("scores", ["0"], ["0", "\r"])  # a class named by a line break stays in its quoted header cell
@pytest.mark.slow
def test_any_name_and_label_round_trips_through_merge(tmp_path, fmt, names, labels):
    shards = []
    for k, part in enumerate((names[::2], names[1::2])):
        shards.append(tmp_path / f"shard{k}.{fmt}")
        shards[-1].write_bytes(_result_table(fmt, part, labels))
    out = tmp_path / f"merged.{fmt}"
    merged = merge(shards, out)
    assert not merged.failures, merged.failures
    if fmt == "raven":
        rows = read_raven(out)
        assert {row["Begin Path"] for row in rows} == {f"site/{n}.wav" for n in names}
        assert {row["Label"] for row in rows} <= set(labels)
    else:
        rows = read_csv(out)
        column = {"csv": "path", "scores": "file", "kaleidoscope": "IN FILE"}[fmt]
        prefix = "" if fmt == "kaleidoscope" else "site/"
        assert {row[column] for row in rows} == {f"{prefix}{n}.wav" for n in names}
        if fmt == "scores":  # the classes' names in the header, even one named like an index column
            assert next(csv.reader(io.StringIO(out.read_bytes().decode(), newline="")))[3:] == [
                spreadsheet_text(label) for label in labels]


@st.composite
def damaged_tables(draw: st.DrawFn) -> tuple[str, bytes]:
    """A table's format and bytes: one `predict` wrote, damaged (bytes flipped, cut, inserted, lines
    repeated or dropped), or any bytes at all."""
    fmt = draw(st.sampled_from([*ROW_FORMATS, "json"]))
    kind = draw(st.sampled_from(["damaged", "damaged", "lines", "bytes"]))
    if kind == "bytes":
        return fmt, draw(st.binary(max_size=400))
    if fmt == "json":
        data = json.dumps({"files": [{"path": "site/a.wav", "windows": []}], "failed": []}).encode()
    else:
        data = _result_table(fmt, draw(st.lists(NAME_TEXT, min_size=1, max_size=2)), ["a", "b"])
    if kind == "lines":
        lines = data.split(b"\n")
        for _ in range(draw(st.integers(1, 3))):
            if not lines:
                break
            i = draw(st.integers(0, len(lines) - 1))
            lines[i: i + 1] = draw(st.sampled_from([[], [lines[i]] * 2, [lines[i][: len(lines[i]) // 2]],
                                                    [lines[i] + b"\t,x"], [b"=cmd|x,@SUM(A1)\t-1"]]))
        return fmt, b"\n".join(lines)
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, max(0, len(data) - 1)))
        step = draw(st.sampled_from(["flip", "cut", "insert"]))
        if step == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif step == "cut":
            del data[position: position + draw(st.integers(1, 64))]
        else:
            data[position:position] = draw(st.sampled_from([b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\r", b"\n", b"\"",
                                                             b"\t", b",", "\u2028".encode(), b"\x85", b"["]))
    return fmt, bytes(data)


@given(damaged_tables())
@example(("csv", b"path,window,start_s,end_s\r\n'a.wav,clip,0\r\n"))  # a short row: was copied as it was
@example(("json", b"[" * 50_000))  # nested too deep for the parser: was a RecursionError
@example(("csv", b"path,window,start_s,end_s\r\n\xe9.wav,1,0,1\r\n"))  # Latin-1: was a UnicodeDecodeError
@pytest.mark.slow
def test_any_table_merges_or_is_one_line_per_table(tmp_path, case):
    """Merging a good table with any other: a joined table whose rows read back and are as long as the
    header, or failures of one line each naming the bad table, and nothing written."""
    fmt, data = case
    suffix = SUFFIXES[fmt]
    good = tmp_path / f"good{suffix}"
    good.write_bytes(_result_table(fmt, ["g"], ["a", "b"]) if fmt != "json" else
                     json.dumps({"files": [{"path": "site/g.wav"}]}).encode())
    bad = tmp_path / f"fuzzed{suffix}"
    bad.write_bytes(data)
    out = tmp_path / f"merged{suffix}"
    out.unlink(missing_ok=True)
    merged = merge([good, bad], out)
    if merged.failures:
        _one_line_failures(merged.failures, bad)
        assert not out.exists()
        return
    assert out.exists()
    if merged.fmt == "raven":
        lines = out.read_bytes().decode().splitlines()
        assert {len(line.split("\t")) for line in lines} == {len(lines[0].split("\t"))}
        read_raven(out)
    elif merged.fmt != "json":
        rows = list(csv.reader(io.StringIO(out.read_bytes().decode(), newline="")))
        assert {len(row) for row in rows} == {len(rows[0])}
        assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


# ----------------------------------------------------------------------------- annotation tables

CELLS = st.one_of(st.sampled_from(["1", "2.5", "0", "-1", "nan", "inf", "1e308", "", "1,5", "a.wav", "b", "/", "..",
                                   "../outside.wav", "/etc/passwd", "dog", "\x1b[2J", "C:\\x\\a.wav", "Selection",
                                   "Begin Time (s)", "\\\t1"]), st.text(max_size=8))
COLUMNS = st.sampled_from(["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Begin Path", "Begin File",
                           "File Offset (s)", "Annotation", "Label", "Species", "Notes"])


@st.composite
def annotation_tables(draw: st.DrawFn) -> tuple[str, bytes]:
    """A table's file name and bytes: a Raven table or Audacity labels with any cells, or any bytes."""
    name = draw(st.sampled_from(["a.txt", "a.Table.1.selections.txt", "season.selections.txt", "notes.txt"]))
    kind = draw(st.sampled_from(["raven", "audacity", "bytes"]))
    if kind == "bytes":
        return name, draw(st.binary(max_size=300))
    rows = draw(st.lists(st.lists(CELLS, min_size=1, max_size=9), max_size=6))
    if kind == "raven":
        rows = [draw(st.lists(COLUMNS, min_size=1, max_size=9)), *rows]
    text = "".join("\t".join(row) + draw(st.sampled_from(["\n", "\r\n", "\r", "\u2028\n", "\x0c\n"])) for row in rows)
    return name, text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"])), errors="replace")


@given(annotation_tables(), st.sampled_from([0.1, 1.0, 5.0]), st.integers(0, 3))
@example(("season.selections.txt", b"Begin Time (s)\tEnd Time (s)\tBegin Path\tLabel\n1\t2\t/\tdog\n"), 1.0, 0)  # `/`
@pytest.mark.slow
def test_any_annotation_table_is_clips_or_problems(tmp_path, case, clip_seconds, negatives):
    """Any table beside two recordings: clips inside the recordings under the root, or problems of one
    line each (or one DatasetError), never another exception, an internal error or a path outside."""
    root = tmp_path / "root"
    if not root.exists():
        root.mkdir()
        for name in ("a", "b"):
            sf.write(root / f"{name}.wav", np.zeros(16_000, np.float32), 8_000)
        (root / "b.txt").write_text("0.5\t1\tdog\n")
        sf.write(tmp_path / "outside.wav", np.zeros(8_000, np.float32), 8_000)
    for table in root.glob("*.txt"):
        if table.name != "b.txt":
            table.unlink()
    name, data = case
    (root / name).write_bytes(data)
    try:
        dataset = load_dataset("annotations", root, clip_seconds=clip_seconds, negatives=negatives, n_folds=2)
    except DatasetError as err:
        assert "\n" not in str(err) and "internal error" not in str(err), str(err)
        return
    assert all("\n" not in p and "\r" not in p and "internal error" not in p for p in dataset.problems), dataset.problems
    assert {c.path for c in dataset.clips} <= {root / "a.wav", root / "b.wav"}
    assert all(0 <= c.start_s <= 2.0 and c.duration_s == clip_seconds for c in dataset.clips)


# ----------------------------------------------------------------------------- tags and chunks in audio files

#: Bytes an old tagger or editor may have put in a text field: Latin-1, broken UTF-8/16, anything.
TAG_BYTES = st.one_of(st.binary(max_size=40), st.text(max_size=20).map(lambda t: t.encode("latin-1", "replace")),
                      st.sampled_from([b"\xff\xfe\xa9\x00\x80", b"\xc3", b"\xff\xfeZ\x00\xd8", b"Cool\xa9Edit"]))
CHUNK_IDS = st.one_of(st.sampled_from([b"LIST", b"INFO", b"fact", b"bext", b"iXML", b"JUNK", b"junk", b"cue ", b"id3 ",
                                       b"ID3 ", b"smpl", b"data", b"fmt "]), st.binary(min_size=4, max_size=4))


def _chunks(wav: bytes) -> list[bytes]:
    """A WAV's chunks, each whole (id, size, body, pad)."""
    chunks, i = [], 12
    while i + 8 <= len(wav):
        size = int.from_bytes(wav[i + 4: i + 8], "little")
        end = min(len(wav), i + 8 + size + size % 2)
        chunks.append(wav[i:end])
        i = end
    return chunks


@st.composite
def chunked_wavs(draw: st.DrawFn) -> bytes:
    """A PCM WAV or one of MP3 frames (format tag 0x55) with chunks added anywhere: LIST INFO with
    text fields in any bytes, and chunks of any id and body, some with a size that lies."""
    mp3 = draw(st.booleans())
    chunks = _chunks(_mp3_in_wav(SEEDS["clip.mp3"], 44_100, 8_820) if mp3 else SEEDS["pcm16.wav"])
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            fields = draw(st.dictionaries(st.sampled_from([b"ISFT", b"INAM", b"IART", b"ICMT", b"ICRD", b"IXYZ"]),
                                          TAG_BYTES, min_size=1, max_size=4))
            info = b"".join(key + struct.pack("<I", len(value)) + value + b"\0" * (len(value) % 2)
                            for key, value in fields.items())
            chunk_id, body = b"LIST", b"INFO" + info
        else:
            chunk_id, body = draw(CHUNK_IDS), draw(st.binary(max_size=64))
        size = draw(st.sampled_from([len(body), len(body), len(body) + 1, max(0, len(body) - 1), 0xFFFFFFFF]))
        chunks.insert(draw(st.integers(0, len(chunks))),
                      chunk_id + struct.pack("<I", size) + body + b"\0" * (len(body) % 2))
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


@st.composite
def tagged_mp3s(draw: st.DrawFn) -> bytes:
    """The MP3 seed with an ID3v2 tag in front (frames in any declared encoding, any bytes) and/or an
    ID3v1 tag at the end (fixed-width fields, any bytes)."""
    data = SEEDS["clip.mp3"]
    if draw(st.booleans()):
        data = _id3v2(draw(TAG_BYTES), draw(st.sampled_from([0, 1, 2, 3, 4, 255]))) + data
    if draw(st.booleans()):
        data += b"TAG" + draw(st.binary(min_size=125, max_size=125))
    return data


@given(st.one_of(chunked_wavs().map(lambda d: ("chunks.wav", d)), tagged_mp3s().map(lambda d: ("tagged.mp3", d))))
@pytest.mark.slow
def test_tags_and_chunks_in_any_bytes_load_or_are_one_audio_error(tmp_path, case):
    name, data = case
    path = tmp_path / name
    path.write_bytes(data)
    try:
        wave = audio.load(path, 16_000)
    except AudioError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err)
        return
    assert wave.dtype == np.float32 and wave.ndim == 1 and np.isfinite(wave).all()
