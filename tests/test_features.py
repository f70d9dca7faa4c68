"""Frontends: every registered kind gets the same checks, and each is verified against an
independent reference implementation on the real recordings committed in examples/ (so the
reference tests run on every clone, with or without ../shared).

Tolerances (float32 torch vs float32/float64 numpy, same framing):
- log-spectrogram, log-mel: max |Δ| ≤ 0.01 dB over the whole image;
- MFCC: max |Δ| ≤ 0.01 (coefficients span hundreds);
- gammatone: max |Δ| ≤ 0.01 dB against the gammatone package's fft_gtgram, on bins within
  80 dB of the peak (the package does not clip; below that both are numerical floor).
"""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audiocnn import audio
from audiocnn.errors import ConfigError
from audiocnn.features import FRONTENDS, create_frontend
from conftest import REPO

#: A short event padded with silence, a steady broadband noise, a long rumble (cut to 5 s).
EXAMPLES = ["dog-bark.wav", "chainsaw-cutting.flac", "thunderstorm-thunder.flac"]
TOL_DB = 0.01


def example(name: str) -> np.ndarray:
    """A committed example at 16 kHz, cut or zero-padded to 5 s (an ESC-50-sized clip)."""
    return audio.fix_length(audio.load(REPO / "examples" / name, 16_000), 5 * 16_000)


@pytest.fixture(scope="module")
def waves():
    return [example(name) for name in EXAMPLES]


@pytest.fixture(scope="module", params=EXAMPLES)
def wave(request) -> np.ndarray:
    return example(request.param)


def image(kind_or_config, wave: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return create_frontend(kind_or_config)(torch.from_numpy(wave))[0].numpy()


# ----------------------------------------------------------------------------- registry-wide


#: The frontends that draw a picture of sound over time (BirdNET's embedding is not one).
PICTURES = [kind for kind in FRONTENDS if FRONTENDS[kind].picture]


@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.slow) if not FRONTENDS[k].picture else k
                                  for k in FRONTENDS])
def test_batch_shape_dtype_and_batching_does_not_change_an_image(kind, waves):
    """9 clips: more than one CPU chunk, so chunked batches are compared with single clips."""
    frontend = create_frontend(kind)
    batch = torch.from_numpy(np.stack([w * gain for gain in (1.0, 0.3, 0.05) for w in waves]))
    with torch.inference_mode():
        together = frontend(batch)
        alone = torch.cat([frontend(w.unsqueeze(0)) for w in batch])
    assert together.dtype == torch.float32
    assert together.shape[:2] == (9, frontend.out_channels)
    assert torch.isfinite(together).all()
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kind", PICTURES)
def test_silence_gives_a_finite_image_constant_over_time(kind):
    out = image(kind, np.zeros(16_000, dtype=np.float32))
    assert np.isfinite(out).all() and np.ptp(out, axis=-1).max() < 1e-3


@pytest.mark.parametrize("kind", PICTURES)
def test_config_round_trips_and_axes_match_the_image(kind, waves):
    frontend = create_frontend({"kind": kind, "sample_rate": 22_050})
    clone = create_frontend(frontend.config())
    assert clone.config() == frontend.config()
    out = image(frontend.config(), audio.resample(waves[0], 16_000, 22_050))
    times = frontend.frame_times(out.shape[-1], 110_250)
    assert len(times) == out.shape[-1] and 0 <= times[0] < 0.1 and 4.9 < times[-1] <= 5.05
    rows = frontend.row_frequencies()
    if rows is not None:
        assert len(rows) == out.shape[-2] and np.all(np.diff(rows) > 0) and rows[-1] <= 22_050 / 2 + 1


def test_a_tone_lights_up_the_row_of_its_frequency():
    t = np.arange(16_000) / 16_000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    for kind in ("logspec", "mel", "gammatone", "multires", "pcen"):
        frontend = create_frontend(kind)
        profile = image(kind, tone)[0].mean(axis=1)
        peak_hz = frontend.row_frequencies()[np.argmax(profile)]
        assert abs(peak_hz - 1000) < 0.12 * 1000, (kind, peak_hz)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"kind": "melody"}, "unknown frontend kind 'melody'"),
        ({"kind": "mel", "n_mel": 64}, "unknown parameter(s) n_mel"),
        ({"kind": "mel", "fmax": 9000}, "fmax: must not exceed Nyquist"),
        ({"kind": "mfcc", "n_mfcc": 200}, "n_mfcc: must be between 1 and n_mels"),
        ({"kind": "logspec", "hop_ms": 0}, "frontend 'logspec': hop_ms: should be greater than 0 (got 0)"),
        ({"kind": "multires", "win_ms": [25, 50], "hop_ms": [10]}, "need one hop per window"),
        # sizes that would exhaust memory or crash are refused before anything is allocated
        ({"kind": "mel", "n_mels": 10**9}, "n_mels: should be less than or equal to 1024 (got 1000000000)"),
        ({"kind": "mel", "sample_rate": 10**9}, "sample_rate: should be less than or equal to 1000000"),
        ({"kind": "mel", "win_ms": 1e-9}, "win_ms: must be at least 8 samples (0.5 ms)"),
        ({"kind": "logspec", "win_ms": 9000}, "win_ms: makes an FFT of 262144 points; at most 65536"),
        ({"kind": "mel", "n_mels": "64"}, "n_mels: should be a valid integer (got '64')"),
        ({"kind": "multires", "win_ms": [25.0] * 100, "hop_ms": [10.0] * 100}, "win_ms: Value should have at most 8 items"),
        # more bands than the FFT has bins: librosa only warns, and the image has constant rows
        ({"kind": "mel", "n_mels": 128, "win_ms": 16}, "128 bands between 0 and 8000 Hz are more than a 256-point FFT"),
    ],
)
def test_bad_frontend_config_is_a_config_error(config, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        create_frontend(config)


# ----------------------------------------------------------------------------- references


@pytest.mark.slow
def test_logspec_matches_librosa(wave):
    ours = image("logspec", wave)[0]
    stft = librosa.stft(wave, n_fft=1024, hop_length=320, win_length=1024, window="hann", center=True)
    ref = librosa.amplitude_to_db(np.abs(stft), ref=1.0, top_db=80.0)
    assert ours.shape == ref.shape == (513, 251)
    assert np.abs(ours - ref).max() <= TOL_DB


@pytest.mark.slow
def test_mel_matches_librosa(wave):
    config = {"kind": "mel", "n_mels": 96, "fmin": 50.0, "fmax": 7000.0, "win_ms": 32, "hop_ms": 10}
    ours = image(config, wave)[0]
    mel = librosa.feature.melspectrogram(
        y=wave, sr=16_000, n_fft=512, hop_length=160, n_mels=96, fmin=50.0, fmax=7000.0
    )
    ref = librosa.power_to_db(mel, ref=1.0, top_db=80.0)
    assert ours.shape == ref.shape == (96, 501)
    assert np.abs(ours - ref).max() <= TOL_DB


@pytest.mark.parametrize("rate, n_fft, n_mels, fmin, fmax", [
    (16_000, 1024, 128, 0.0, 8000.0), (16_000, 512, 96, 50.0, 7000.0), (22_050, 2048, 40, 20.0, 11_025.0),
    (44_100, 4096, 256, 0.0, 22_050.0), (16_000, 400, 80, 300.0, 4000.0), (48_000, 1024, 64, 999.9, 1000.1 * 8),
])
def test_the_mel_filterbank_is_librosas_bit_for_bit(rate, n_fft, n_mels, fmin, fmax):
    """Written out so prediction does not import librosa (200 MB of numba and llvmlite); it must not
    move a single weight, or models trained with librosa's filterbank would see other features."""
    from audiocnn.features.spectral import mel_frequencies, slaney_filterbank

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # librosa's "Empty filters" for the narrow band
        ref = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    ours = slaney_filterbank(rate, n_fft, n_mels, fmin, fmax)
    assert ours.dtype == ref.dtype and np.array_equal(ours, ref)
    assert np.array_equal(mel_frequencies(n_mels + 2, fmin, fmax), librosa.mel_frequencies(n_mels + 2, fmin=fmin,
                                                                                            fmax=fmax))


def test_mfcc_matches_librosa(wave):
    ours = image({"kind": "mfcc", "n_mfcc": 20}, wave)[0]
    ref = librosa.feature.mfcc(y=wave, sr=16_000, n_mfcc=20, n_fft=1024, hop_length=320, n_mels=128)
    assert ours.shape == ref.shape == (20, 251)
    assert np.abs(ours - ref).max() <= 0.01


def test_pcen_matches_librosa(wave):
    """librosa.pcen of the same mel power (scaled by 2**31; the mel power itself is checked against
    librosa above), with the smoother started at each band's first frame as ours is."""
    frontend = create_frontend({"kind": "pcen", "time_constant": 0.25})
    x = torch.from_numpy(wave)[None]
    with torch.inference_mode():
        ours, energy = frontend(x)[0, 0].numpy(), frontend.mel(x)[0].double().numpy() * 2.0**31
    b = frontend.params.smoothing
    ref = librosa.pcen(energy, sr=16_000, hop_length=320, time_constant=0.25, zi=(1 - b) * energy[:, :1])
    assert ours.shape == ref.shape == (128, 251)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_pcen_hardly_changes_with_the_recording_level_where_log_mel_shifts_by_it():
    """Gain 0.98: each band is divided by (almost) its own level, so 20 dB quieter is nearly the same image."""
    wave = example("dog-bark.wav")
    loud, quiet = image("pcen", wave)[0], image("pcen", 0.1 * wave)[0]
    assert np.abs(loud - quiet).mean() < 0.1 * np.abs(loud).mean()
    shift = np.abs(image("mel", wave)[0] - image("mel", 0.1 * wave)[0]).mean()
    assert shift > 15  # dB: what the level does to a log-mel image


def test_gammatone_matches_the_gammatone_package(wave):
    from gammatone.fftweight import fft_gtgram

    config = {"kind": "gammatone", "win_ms": 64, "hop_ms": 16, "n_bands": 64, "fmin": 50.0}
    frontend = create_frontend(config)
    # fft_gtgram frames are not centred: its column c is centred where ours is c + n_fft/2/hop.
    shift = frontend.params.n_fft // 2 // frontend.params.hop_length
    ours = image(config, wave)[0]
    ref = librosa.amplitude_to_db(fft_gtgram(wave.astype(np.float64), 16_000, 0.064, 0.016, 64, 50.0), top_db=None)
    ours = ours[:, shift : shift + ref.shape[1]]
    above_floor = ref > ref.max() - 80.0
    assert above_floor.sum() > 1000
    assert np.abs(ours - ref)[above_floor].max() <= TOL_DB


def test_multires_channels_are_librosa_mels_at_three_resolutions(wave):
    frontend = create_frontend("multires")
    ours = image("multires", wave)
    assert ours.shape == (3, 128, 250)
    for channel, (win, hop) in enumerate([(400, 160), (800, 400), (1600, 800)]):
        n_fft = 1 << int(np.ceil(np.log2(win)))
        mel = librosa.feature.melspectrogram(
            y=wave, sr=16_000, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=128
        )
        ref = torch.from_numpy(librosa.power_to_db(mel, top_db=80.0))[None, None]
        ref = F.interpolate(ref, size=(128, 250), mode="bilinear", align_corners=False)[0, 0].numpy()
        assert np.abs(ours[channel] - ref).max() <= TOL_DB, channel
    assert frontend.out_channels == 3
