"""Waveform augmentation: seeded audiomentations copies, cached as images, shown at random in training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiocnn.config import WaveformAugmentConfig, load_recipe
from audiocnn.datasets import load_dataset, make_splits
from audiocnn.datasets.images import clip_images
from audiocnn.errors import ConfigError
from audiocnn.features import create_frontend
from audiocnn.training.augment import augmented_waveform, waveform_transform
from audiocnn.training.cache import augmented_images
from audiocnn.training.cv import run_cv, split_data
from audiocnn.training.fit import RandomCopy
from audiocnn.training.prepare import prepare
from conftest import SMOKE, TINY

RATE = 8000


def _tone(seconds: float = 1.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(x**2)))


def test_a_copy_depends_on_its_seed_only():
    transform = waveform_transform(WaveformAugmentConfig(copies=1, p=1.0, gain_db=12, min_snr_db=10, shift_seconds=0.2))
    tone = _tone()
    first = augmented_waveform(transform, tone, RATE, seed=7)
    np.testing.assert_array_equal(first, augmented_waveform(transform, tone, RATE, seed=7))
    assert not np.allclose(first, augmented_waveform(transform, tone, RATE, seed=8))
    assert first.shape == tone.shape and first.dtype == np.float32
    np.testing.assert_array_equal(tone, _tone())  # the input is left alone


def test_gain_stays_within_its_range_and_noise_sits_at_the_drawn_snr():
    tone = _tone()
    gains = [_rms_db(augmented_waveform(waveform_transform(WaveformAugmentConfig(copies=1, p=1.0, gain_db=6)),
                                        tone, RATE, seed)) - _rms_db(tone) for seed in range(20)]
    assert all(-6.01 <= g <= 6.01 for g in gains) and np.std(gains) > 1  # drawn, not fixed
    noisy = augmented_waveform(waveform_transform(WaveformAugmentConfig(copies=1, p=1.0, min_snr_db=10, max_snr_db=10)),
                               tone, RATE, seed=0)
    snr = _rms_db(tone) - _rms_db(noisy - tone)
    assert snr == pytest.approx(10, abs=0.5)


def test_pitch_shift_moves_a_tone_by_the_drawn_semitones():
    transform = waveform_transform(WaveformAugmentConfig(copies=1, p=1.0, pitch_semitones=2))
    shifted = augmented_waveform(transform, _tone(2.0, 500.0), RATE, seed=3)
    peak_hz = np.argmax(np.abs(np.fft.rfft(shifted))) * RATE / len(shifted)
    semitones = 12 * np.log2(peak_hz / 500.0)
    assert 0.2 < abs(semitones) <= 2.05


def test_lowpass_removes_what_lies_above_the_drawn_cutoff():
    transform = waveform_transform(WaveformAugmentConfig(copies=1, p=1.0, min_lowpass_hz=1000, max_lowpass_hz=1500))
    low, high = _tone(1.0, 300.0), _tone(1.0, 3000.0)
    assert _rms_db(augmented_waveform(transform, low, RATE, seed=0)) == pytest.approx(_rms_db(low), abs=1.0)
    assert _rms_db(high) - _rms_db(augmented_waveform(transform, high, RATE, seed=0)) > 24  # >= 1 octave at >= 24 dB/oct


def test_eq_changes_the_level_of_a_tone_by_a_drawn_gain_within_the_range():
    transform = waveform_transform(WaveformAugmentConfig(copies=1, p=1.0, eq_db=12))
    tone = _tone(1.0, 1000.0)  # at 8 kHz: the bands must stay below 4 kHz to stay stable
    changes = [_rms_db(augmented_waveform(transform, tone, RATE, seed=seed)) - _rms_db(tone) for seed in range(8)]
    assert max(abs(c) for c in changes) < 36  # three bands, each within ±12 dB
    assert np.std(changes) > 1  # a different microphone per copy, not one fixed filter


@pytest.mark.slow
def test_a_simulated_room_adds_a_seeded_reverberant_tail_and_keeps_the_energy(esc50_clip):
    import soundfile as sf

    bark, rate = sf.read(esc50_clip, dtype="float32")  # a dog bark, then quiet
    transform = waveform_transform(WaveformAugmentConfig(copies=1, p=1.0, min_rt60_s=0.8, max_rt60_s=1.0))
    wet = augmented_waveform(transform, bark, rate, seed=3)
    np.testing.assert_array_equal(wet, augmented_waveform(transform, bark, rate, seed=3))
    assert not np.allclose(wet, augmented_waveform(transform, bark, rate, seed=4))  # another room
    assert wet.shape == bark.shape and np.sum(wet**2) == pytest.approx(np.sum(bark**2), rel=1e-3)
    # One bark in digital silence: the room rings on after it (RT60 ≥ 0.8 s: the 200 ms after
    # the bark's last sound lose < 60 dB), starts no earlier than the bark, and the loudest frame stays.
    def frame_db(x):
        frames = x[: len(x) // 800 * 800].reshape(-1, 800)  # 50 ms
        return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    dry_db, wet_db = frame_db(bark), frame_db(wet)
    sounding = np.flatnonzero(dry_db > -100)
    first, last = sounding[0], sounding[-1]
    assert (dry_db[last + 1:last + 5] < -100).all() and (wet_db[last + 1:last + 5] > dry_db.max() - 60).all()
    assert (wet_db[:first] < -100).all() and abs(int(np.argmax(wet_db)) - int(np.argmax(dry_db))) <= 1


@pytest.mark.slow
def test_simulated_rooms_decay_at_the_drawn_reverberation_time_and_never_fail():
    import random

    from audiocnn.training.rooms import SimulatedRoom

    click = np.zeros(16_000, dtype=np.float32)
    click[0] = 1.0
    for low, high in ((0.2, 0.25), (0.8, 1.0)):  # short ones in large rooms were impossible rooms once
        room = SimulatedRoom(low, high, p=1.0)
        for seed in range(40):
            random.seed(seed)
            response = room(click, 16_000)
            rt60 = room.parameters["rt60"]
            decay = np.cumsum(response[::-1] ** 2)[::-1]
            minus_30_db = np.argmax(decay < decay[0] * 1e-3) / 16_000  # Schroeder: T30 = RT60 / 2
            # image sources decay a little faster than Sabine in absorbent rooms: within 20-80%
            assert low <= rt60 <= max(high, 0.5) and 0.2 * rt60 < minus_30_db < 0.8 * rt60, (seed, rt60, minus_30_db)


@pytest.mark.slow
def test_background_beds_mix_at_the_drawn_snr_and_their_recordings_key_the_cache(esc50_root, tones, tmp_path):
    import shutil

    import soundfile as sf

    beds = tmp_path / "beds"
    beds.mkdir()
    shutil.copy(esc50_root / "audio" / "1-17367-A-10.flac", beds / "rain.flac")  # a real ambience recording
    tone = _tone(1.0)
    transform = waveform_transform(WaveformAugmentConfig(copies=1, p=1.0, backgrounds=str(beds),
                                                         min_background_snr_db=6, max_background_snr_db=12))
    snrs = [_rms_db(tone) - _rms_db(augmented_waveform(transform, tone, RATE, seed) - tone) for seed in range(6)]
    assert all(5.9 < snr < 12.1 for snr in snrs) and np.std(snrs) > 0.5
    bed, _ = sf.read(beds / "rain.flac", dtype="float32")
    mixed = augmented_waveform(transform, tone, RATE, seed=0)
    np.testing.assert_array_equal(mixed, augmented_waveform(transform, tone, RATE, seed=0))
    # The same settings over other recordings are other copies: the cache key holds the beds' contents.
    dataset = load_dataset("folder", tones)
    frontend = create_frontend({"kind": "mel", "sample_rate": RATE, "n_mels": 32})
    augment = WaveformAugmentConfig(copies=1, p=1.0, backgrounds=str(beds))
    first = augmented_images(dataset.clips[:2], frontend, 1.0, augment, tmp_path / "cache", progress=False)
    sf.write(beds / "rain.flac", bed[::-1].copy(), 16000)
    second = augmented_images(dataset.clips[:2], frontend, 1.0, augment, tmp_path / "cache", progress=False)
    assert not torch.allclose(first, second) and len(list((tmp_path / "cache").glob("*.npy"))) == 2
    for folder, problem in ((tmp_path / "absent", "is not a folder"), (tmp_path / "cache", "holds no audio files")):
        with pytest.raises(ConfigError, match=f"train.waveform.backgrounds: {folder} {problem}"):
            waveform_transform(WaveformAugmentConfig(copies=1, backgrounds=str(folder)))(tone, RATE)


def test_waveform_settings_must_come_with_copies_and_the_reverse():
    with pytest.raises(ConfigError, match="copies is 0"):
        load_recipe(SMOKE, ["train.waveform.gain_db=6"])
    with pytest.raises(ConfigError, match="no transform is on"):
        load_recipe(SMOKE, ["train.waveform.copies=2"])
    with pytest.raises(ConfigError, match="min_stretch"):
        load_recipe(SMOKE, ["train.waveform.copies=2", "train.waveform.min_stretch=1.3", "train.waveform.max_stretch=1.2"])
    with pytest.raises(ConfigError, match="min_lowpass_hz <= max_lowpass_hz"):
        load_recipe(SMOKE, ["train.waveform.copies=2", "train.waveform.min_lowpass_hz=8000"])
    with pytest.raises(ConfigError, match=r"eq_db: should be greater than or equal to 0 \(got -3\)"):
        load_recipe(SMOKE, ["train.waveform.copies=2", "train.waveform.eq_db=-3"])
    with pytest.raises(ConfigError, match="min_rt60_s <= max_rt60_s"):
        load_recipe(SMOKE, ["train.waveform.copies=2", "train.waveform.min_rt60_s=1.5", "train.waveform.max_rt60_s=1"])
    with pytest.raises(ConfigError, match="min_background_snr_db <= max_background_snr_db"):
        load_recipe(SMOKE, ["train.waveform.copies=2", "train.waveform.backgrounds=beds",
                            "train.waveform.min_background_snr_db=40"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_recipe(SMOKE, ["train.waveform.pitch=2"])
    recipe = load_recipe(SMOKE, ["train.waveform.copies=2", "train.waveform.min_snr_db=0", "train.waveform.gain_db=6",
                                 "train.waveform.min_lowpass_hz=2000", "train.waveform.eq_db=6",
                                 "train.waveform.max_rt60_s=1", "train.waveform.backgrounds=beds"])
    assert recipe.train.waveform.transforms == ["gain", "noise", "room", "background", "eq", "lowpass"]


def test_augmented_images_are_cached_per_setting_and_differ_from_the_originals(tones, tmp_path):
    dataset = load_dataset("folder", tones)
    clips = dataset.clips[:4]
    frontend = create_frontend({"kind": "mel", "sample_rate": RATE, "n_mels": 32})
    augment = WaveformAugmentConfig(copies=2, p=1.0, gain_db=12, min_snr_db=5)
    copies = augmented_images(clips, frontend, 1.0, augment, tmp_path, progress=False)
    originals = clip_images(clips, frontend, 1.0, tmp_path, progress=False)
    assert copies.shape == (2, *originals.shape)
    assert not torch.allclose(copies[0], originals) and not torch.allclose(copies[0], copies[1])
    assert len(list(tmp_path.glob("*.npy"))) == 2
    torch.testing.assert_close(augmented_images(clips, frontend, 1.0, augment, tmp_path, progress=False), copies)
    other_seed = augmented_images(clips, frontend, 1.0, augment, tmp_path, seed=1, progress=False)
    assert not torch.allclose(other_seed, copies) and len(list(tmp_path.glob("*.npy"))) == 3
    # a clip's copies do not depend on the other clips in the list, nor on their order
    reordered = augmented_images(clips[::-1][:3], frontend, 1.0, augment, None, progress=False)
    torch.testing.assert_close(reordered, copies[:, [3, 2, 1]])
    state = np.random.get_state()[1].copy()
    augmented_images(clips[:1], frontend, 1.0, augment, None, progress=False)
    assert np.array_equal(np.random.get_state()[1], state)  # the caller's random state is left alone


def test_random_copy_shows_every_version_of_a_clip():
    originals, copies = torch.zeros(3, 1, 2, 2), torch.stack([torch.ones(3, 1, 2, 2), 2 * torch.ones(3, 1, 2, 2)])
    dataset = RandomCopy(originals, copies, torch.tensor([0, 1, 2]))
    torch.manual_seed(0)
    seen = {float(dataset[1][0].mean()) for _ in range(60)}
    assert seen == {0.0, 1.0, 2.0} and int(dataset[2][1]) == 2 and len(dataset) == 3


@pytest.mark.slow
def test_training_uses_the_copies_of_the_training_clips_only(tones, tmp_path, monkeypatch):
    import audiocnn.training.fit as train

    shown: list[tuple[type, int]] = []
    real_loader = train._loader

    def watching(part, classifier, cfg, shuffle=False, copies=None, targets=None):
        loader = real_loader(part, classifier, cfg, shuffle, copies, targets)
        shown.append((type(loader.dataset), len(loader.dataset)))
        return loader

    monkeypatch.setattr(train, "_loader", watching)
    recipe = load_recipe(SMOKE, [*TINY, "train.epochs=1", "train.waveform.copies=2", "train.waveform.gain_db=10",
                                  "train.waveform.p=1"])
    prepared = prepare(recipe, tones, tmp_path / "cache", progress=False)
    fold1 = make_splits(prepared.dataset, val_fraction=recipe.data.val_fraction, seed=recipe.data.seed)[0]
    data = split_data(fold1, prepared)
    assert data.train_copies is not None and data.train_copies.shape[:2] == (2, len(fold1.train))
    row = prepared.rows[fold1.train[0].path]
    torch.testing.assert_close(data.train_copies[:, 0], prepared.copies[:, row])
    run_cv(recipe, tones, tmp_path / "run", folds=[1], cache_dir=tmp_path / "cache", progress=False)  # copies cached
    # the training clips were shown through their copies; validation and test clips as they are
    assert (RandomCopy, len(fold1.train)) in shown
    assert all(kind is not RandomCopy for kind, n in shown if n != len(fold1.train))
