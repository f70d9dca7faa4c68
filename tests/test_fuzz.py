"""Fuzzing the readers of untrusted input: audio files, recipes, bundle configs (hypothesis).

Each property says what a reader may do with any input: return a valid result, or raise its
one error type (`AudioError`, `ConfigError`, `BundleError`) whose message names the file.
Anything else (another exception, a NaN in the output) is a bug. The inputs are valid files
damaged the ways disks, networks and people damage them: bytes flipped, cut, inserted, and
header fields overwritten with extreme values; settings with every kind of wrong value.

A bounded run is part of `make test` (the `ci` profile: fixed examples, about 20 s); the
`long` profile (`HYPOTHESIS_PROFILE=long`, or benchmarks/fuzz.py) draws many more.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audiocnn import audio, bundle
from audiocnn.config import read_recipe_yaml, recipe_from_dict
from audiocnn.errors import AudioError, BundleError, ConfigError

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
