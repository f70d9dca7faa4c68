"""The building blocks of the frontends: their parameters, and batched torch STFT and filterbanks.

Parameters are frozen pydantic dataclasses validated on creation, with the ranges annotated
below (a bad value is a ConfigError naming the parameter, raised before any filterbank is
allocated from it); times are in milliseconds and turn into samples here, so every frontend
frames audio the same way. `Stft` matches librosa's framing (centred, zero-padded, periodic
Hann) and `MelPower` applies librosa's Slaney mel filterbank, which the tests check.
"""

from __future__ import annotations

import warnings
from typing import Annotated

import numpy as np
import torch
from pydantic import BeforeValidator, Field
from pydantic.dataclasses import dataclass
from torch import Tensor, nn

from audiocnn.errors import ConfigError
from audiocnn.validation import STRICT, Float

#: Recorders sample at 8 kHz (phones) to 384-500 kHz (bat detectors).
SampleRate = Annotated[int, Field(ge=1000, le=1_000_000)]
#: A window or hop: at most 10 s (a frame longer than that is no spectrogram).
Milliseconds = Annotated[Float, Field(gt=0, le=10_000)]
TopDb = Annotated[Float, Field(gt=0, le=200)]
Hz = Annotated[Float, Field(ge=0, le=500_000)]
#: Image rows: mel bands, MFCCs, gammatone bands.
Rows = Annotated[int, Field(ge=1, le=1024)]
#: The longest FFT a frontend may use (4 s at 16 kHz).
MAX_FFT = 1 << 16

AMIN_POWER = 1e-10  # floor before log10, as librosa.power_to_db


def power_to_db(power: Tensor, top_db: float | None) -> Tensor:
    """10·log10(power) clipped to `top_db` below each example's (and channel's) peak.

    The clip is per example so that batching never changes a clip's image.
    """
    db = 10.0 * torch.log10(power.clamp_min(AMIN_POWER))
    if top_db is not None:
        peak = db.amax(dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - top_db)
    return db


def next_power_of_two(n: int) -> int:
    """The smallest power of two at least `n` (FFT sizes)."""
    return 1 << max(0, int(np.ceil(np.log2(n))))


@dataclass(frozen=True, config=STRICT)
class StftParams:
    """Framing shared by the single-resolution frontends (times in milliseconds)."""

    sample_rate: SampleRate = 16_000
    win_ms: Milliseconds = 64.0
    hop_ms: Milliseconds = 20.0
    top_db: TopDb | None = 80.0

    def __post_init__(self) -> None:
        _require(self.win_length >= 8, "win_ms", f"must be at least 8 samples ({8000 / self.sample_rate:g} ms)")
        _require(self.n_fft <= MAX_FFT, "win_ms", f"makes an FFT of {self.n_fft} points; at most {MAX_FFT}")

    def samples(self, ms: float) -> int:
        """Milliseconds as a whole number of samples (at least 1)."""
        return max(1, int(round(ms * self.sample_rate / 1000.0)))

    @property
    def win_length(self) -> int:
        """Window length in samples."""
        return self.samples(self.win_ms)

    @property
    def hop_length(self) -> int:
        """Hop in samples."""
        return self.samples(self.hop_ms)

    @property
    def n_fft(self) -> int:
        """FFT size: the window length rounded up to a power of two."""
        return next_power_of_two(self.win_length)


@dataclass(frozen=True, config=STRICT)
class MelParams(StftParams):
    """STFT framing plus the mel bands: how many, and their frequency range."""

    n_mels: Rows = 128
    fmin: Hz = 0.0
    fmax: Hz | None = None  # None: Nyquist

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_band(self.sample_rate, self.fmin, self.fmax)

    @property
    def top_hz(self) -> float:
        """The highest mel band edge: `fmax`, or the Nyquist frequency."""
        return self.fmax if self.fmax is not None else self.sample_rate / 2


@dataclass(frozen=True, config=STRICT)
class PcenParams(MelParams):
    """Per-channel energy normalisation of the mel power (librosa.pcen's definition and defaults).

    `scale` multiplies the mel power first (librosa's examples scale float audio by 2**31, to
    the range of integer samples PCEN was designed on); `time_constant` is in seconds.
    """

    gain: Annotated[Float, Field(gt=0, le=1)] = 0.98
    bias: Annotated[Float, Field(ge=0, le=1e6)] = 2.0
    power: Annotated[Float, Field(gt=0, le=1)] = 0.5
    time_constant: Annotated[Float, Field(gt=0, le=60)] = 0.4
    eps: Annotated[Float, Field(gt=0, le=1)] = 1e-6
    scale: Annotated[Float, Field(gt=0, le=1e12)] = 2.0**31

    @property
    def smoothing(self) -> float:
        """The IIR smoother's coefficient b, from the time constant in frames (as librosa.pcen)."""
        frames = self.time_constant * self.sample_rate / self.hop_length
        return float((np.sqrt(1 + 4 * frames**2) - 1) / (2 * frames**2))


@dataclass(frozen=True, config=STRICT)
class MfccParams(MelParams):
    """Mel parameters plus how many cepstral coefficients are kept (at most n_mels)."""

    n_mfcc: Rows = 40

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.n_mfcc <= self.n_mels, "n_mfcc", f"must be between 1 and n_mels ({self.n_mels})")


@dataclass(frozen=True, config=STRICT)
class GammatoneParams(StftParams):
    """STFT framing plus the gammatone (ERB) bands: how many, and the lowest frequency."""

    n_bands: Rows = 128
    fmin: Hz = 50.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_band(self.sample_rate, self.fmin, None)

    @property
    def n_fft(self) -> int:
        """FFT size: twice the window length, rounded up to a power of two."""
        # As the gammatone package's fft_gtgram: an FFT twice the window, so narrow
        # low-frequency ERB bands still get several FFT bins each.
        return next_power_of_two(2 * self.win_length)


def _as_tuple(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value  # YAML and JSON give lists


#: One value per channel of a multi-resolution image (at most 8 channels).
PerChannel = Annotated[tuple[Milliseconds, ...], BeforeValidator(_as_tuple), Field(min_length=1, max_length=8)]
Pixels = Annotated[int, Field(ge=1, le=4096)]


@dataclass(frozen=True, config=STRICT)
class MultiresParams:
    """The reference paper's 3-channel log-mel: one channel per (window, hop) pair."""

    sample_rate: SampleRate = 16_000
    n_mels: Rows = 128
    fmin: Hz = 0.0
    fmax: Hz | None = None
    win_ms: PerChannel = (25.0, 50.0, 100.0)
    hop_ms: PerChannel = (10.0, 25.0, 50.0)
    height: Pixels = 128
    width: Pixels = 250
    top_db: TopDb | None = 80.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "win_ms", tuple(float(v) for v in self.win_ms))
        object.__setattr__(self, "hop_ms", tuple(float(v) for v in self.hop_ms))
        _require(len(self.win_ms) == len(self.hop_ms), "win_ms/hop_ms", "need one hop per window")
        for index in range(len(self.win_ms)):
            self.channel(index)  # each channel's framing checked as a mel frontend's

    def channel(self, index: int) -> MelParams:
        """The mel parameters of resolution `index` (its window and hop)."""
        return MelParams(
            sample_rate=self.sample_rate, win_ms=self.win_ms[index], hop_ms=self.hop_ms[index],
            top_db=self.top_db, n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax,
        )


def _require(ok: bool, name: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"frontend parameter {name}: {problem}")


def _check_band(sample_rate: int, fmin: float, fmax: float | None) -> None:
    top = sample_rate / 2 if fmax is None else fmax
    _require(0 <= fmin < top, "fmin", f"must be >= 0 and below the top frequency ({top:g} Hz)")
    _require(top <= sample_rate / 2, "fmax", f"must not exceed Nyquist ({sample_rate / 2:g} Hz)")


class Stft(nn.Module):
    """|STFT|² with librosa's framing (centred, zero-padded, periodic Hann)."""

    def __init__(self, n_fft: int, win_length: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.register_buffer("window", torch.hann_window(win_length, periodic=True), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Power spectrogram (batch, bins, frames) of waveforms (batch, samples), centred frames."""
        spec = torch.stft(
            x, self.n_fft, self.hop_length, self.win_length, self.window,
            center=True, pad_mode="constant", return_complex=True,
        )
        return spec.real.square() + spec.imag.square()


class MelPower(nn.Module):
    """Mel-band power: librosa's (Slaney) mel filterbank applied to |STFT|².

    The filterbank is ~98% zeros (each FFT bin feeds at most two bands), so on CPU it is
    applied as a sparse CSR product, which made the whole mel frontend 10-30% faster in our
    runs (benchmarks/mel_stages.py); on other devices the dense product is used.
    """

    def __init__(self, p: MelParams) -> None:
        super().__init__()
        self.stft = Stft(p.n_fft, p.win_length, p.hop_length)
        # Built once here, not on first use: a frontend shared by threads must not build it twice
        # (nor change the warning filters while another thread runs).
        fb = slaney_filterbank(p.sample_rate, p.n_fft, p.n_mels, p.fmin, p.top_hz)
        empty = int((fb.max(axis=1) <= 0).sum())
        _require(not empty, "n_mels", f"{p.n_mels} bands between {p.fmin:g} and {p.top_hz:g} Hz are more than a "
                 f"{p.n_fft}-point FFT can fill ({empty} would stay empty); use fewer n_mels, a longer win_ms "
                 "or a wider band")
        self.register_buffer("filterbank", torch.from_numpy(fb), persistent=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's "sparse CSR support is in beta"
            self._sparse = self.filterbank.to_sparse_csr()

    def forward(self, x: Tensor) -> Tensor:
        """Mel power (batch, bands, frames) of waveforms (batch, samples)."""
        power = self.stft(x)  # (batch, bins, frames), laid out frame-major by torch.stft
        if power.device.type != "cpu":
            return torch.matmul(self.filterbank, power)
        batch, bins, frames = power.shape
        by_frame = power.transpose(1, 2).reshape(batch * frames, bins)
        mel = torch.sparse.mm(self._sparse, by_frame.T)  # (bands, batch * frames)
        return mel.reshape(-1, batch, frames).transpose(0, 1)


def pcen(energy: Tensor, p: PcenParams) -> Tensor:
    """librosa.pcen of (batch, bands, frames) energy: E / (eps + M)^gain, biased and compressed, where
    M is E smoothed over time by a first-order IIR filter. The filter starts at each band's first
    frame (librosa's default starts it at 1, which makes every window begin with a transient);
    with `zi=(1 - b) * E[:, :1]`, librosa.pcen gives the same numbers (tests/test_features.py)."""
    b = p.smoothing
    smoothed = torch.empty_like(energy)
    state = energy[..., 0]
    for t in range(energy.shape[-1]):  # y[t] = (1 - b) y[t - 1] + b x[t]: a loop over a few hundred frames
        state = (1 - b) * state + b * energy[..., t]
        smoothed[..., t] = state
    gain_factor = torch.exp(-p.gain * (np.log(p.eps) + torch.log1p(smoothed / p.eps)))
    return p.bias**p.power * torch.expm1(p.power * torch.log1p(energy * gain_factor / p.bias))


def mel_centres(p: MelParams) -> np.ndarray:
    """Centre frequency (Hz) of each mel band."""
    return mel_frequencies(p.n_mels + 2, p.fmin, p.top_hz)[1:-1]


# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above.
_MEL_HZ_PER_MEL = 200.0 / 3
_MEL_LOG_HZ = 1000.0
_MEL_LOG_START = _MEL_LOG_HZ / _MEL_HZ_PER_MEL
_MEL_LOG_STEP = np.log(6.4) / 27.0


def mel_frequencies(n: int, fmin: float, fmax: float) -> np.ndarray:
    """`n` frequencies (Hz) evenly spaced on Slaney's mel scale from `fmin` to `fmax`.

    The same numbers as `librosa.mel_frequencies` (a test compares them): written out here so
    that prediction does not import librosa, whose numba and llvmlite cost 200 MB of memory.
    """
    def to_mel(hz: float) -> float:
        return hz / _MEL_HZ_PER_MEL if hz < _MEL_LOG_HZ else _MEL_LOG_START + np.log(hz / _MEL_LOG_HZ) / _MEL_LOG_STEP

    mels = np.linspace(to_mel(fmin), to_mel(fmax), n)
    hz = _MEL_HZ_PER_MEL * mels
    log = mels >= _MEL_LOG_START
    hz[log] = _MEL_LOG_HZ * np.exp(_MEL_LOG_STEP * (mels[log] - _MEL_LOG_START))
    return hz


def slaney_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32 triangular filters, area-normalised (Slaney): bit for bit
    `librosa.filters.mel` with its defaults (a test compares them), without importing librosa."""
    fft_hz = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    edges = mel_frequencies(n_mels + 2, fmin, fmax)
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, fft_hz)
    weights = np.zeros((n_mels, len(fft_hz)), dtype=np.float32)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / widths[i], ramps[i + 2] / widths[i + 1]))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, np.newaxis]
    return weights
