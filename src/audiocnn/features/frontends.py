"""Spectrogram frontends: batched `torch.nn.Module`s that turn waveforms into CNN images.

Training, prediction, export and serving all compute features through these modules, so the
picture a model sees is the same everywhere. Each frontend is registered by name and built
from a plain config dict (`{"kind": "mel", "n_mels": 128, ...}`) that a bundle stores.

All frontends take waveforms shaped (batch, samples) or (samples,) at `sample_rate` and return
(batch, channels, rows, frames) in decibels (MFCC: DCT of decibels). STFT framing matches
librosa's defaults (centred frames, zero padding, periodic Hann window), which the tests check.

Filterbank matrices are the field's reference ones: librosa's Slaney mel filters (written out in
`spectral.slaney_filterbank`, bit for bit, so prediction need not import librosa and numba) and
the `gammatone` package's ERB weights; the modules only add batched, device-agnostic maths.
Their parameters and the shared STFT/mel blocks live in `features.spectral`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import Tensor, nn

from audiocnn.errors import ConfigError
from audiocnn.features.spectral import (
    GammatoneParams,
    MelParams,
    MelPower,
    MfccParams,
    MultiresParams,
    PcenParams,
    Stft,
    StftParams,
    mel_centres,
    pcen,
    power_to_db,
)
from audiocnn.validation import shown_keys, validation_problem

CPU_CHUNK_ELEMENTS = 1 << 20  # STFT frame samples per CPU chunk (4 MB of float32, stays in cache)


# ----------------------------------------------------------------------------- modules

FRONTENDS: dict[str, type[Frontend]] = {}


def register(cls: type[Frontend]) -> type[Frontend]:
    """Class decorator: add a frontend to `FRONTENDS` under its `kind` (what recipes and bundles name)."""
    FRONTENDS[cls.kind] = cls
    return cls


class Frontend(nn.Module):
    """Base class: waveform batch -> (batch, channels, rows, frames) image."""

    kind: ClassVar[str]
    params_type: ClassVar[type]
    out_channels: ClassVar[int] = 1
    row_label: ClassVar[str] = "Frequency (Hz)"
    value_label: ClassVar[str] = "dB"  # what an image's values are, for colour bars
    #: A picture of the sound (time × frequency) that a CNN reads and a person can look at; False for a
    #: pretrained audio network's embedding, which a head reads and which has no picture to show or explain.
    picture: ClassVar[bool] = True

    def __init__(self, params: Any) -> None:
        super().__init__()
        self.params = params

    @property
    def sample_rate(self) -> int:
        """Hz the frontend expects its waveforms at."""
        return int(self.params.sample_rate)

    def config(self) -> dict[str, Any]:
        """The dict that `create_frontend` turns back into an identical frontend."""
        values = dataclasses.asdict(self.params)
        return {"kind": self.kind, **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}}

    def describe(self) -> str:
        """One line for figure titles and logs: the parameters a reader needs."""
        def show(value: Any) -> str:
            if isinstance(value, (list, tuple)):
                return "/".join(show(v) for v in value)
            return f"{value:g}" if isinstance(value, float) else str(value)

        items = [f"{k}={show(v)}" for k, v in self.config().items() if k not in {"kind", "top_db"} and v is not None]
        return f"{self.kind}: {', '.join(items)}"

    def row_frequencies(self) -> np.ndarray | None:
        """Centre frequency (Hz) of each image row, bottom row first; None if rows are not Hz."""
        return None

    @property
    def standardised(self) -> bool:
        """Whether training scales the images per channel by the training set's statistics (yes, for pictures)."""
        return True

    def frame_times(self, n_frames: int, n_samples: int) -> np.ndarray:
        """Time (s) at the centre of each image column."""
        return np.arange(n_frames) * self.params.hop_length / self.sample_rate

    def image_shape(self, n_samples: int) -> tuple[int, int, int]:
        """(channels, rows, frames) of the image of `n_samples`, without computing it: sizes
        are checked before anything is allocated (`config.recipe_from_dict`)."""
        rows = self.row_frequencies()
        return self.out_channels, len(rows) if rows is not None else 0, n_samples // self.params.hop_length + 1

    def forward(self, waveforms: Tensor) -> Tensor:
        """(batch, samples) or (samples,) -> (batch, channels, rows, frames).

        On CPU the batch is processed a few clips at a time: the STFT and its intermediates
        then stay in cache, which is several times faster than one big batch (see
        BENCHMARKS.md). Results are identical either way.
        """
        if waveforms.ndim == 1:
            waveforms = waveforms.unsqueeze(0)
        if waveforms.ndim != 2:
            raise ValueError(f"expected waveforms shaped (batch, samples), got {tuple(waveforms.shape)}")
        x = waveforms.float()
        if x.device.type != "cpu" or len(x) <= 1:
            return self.compute(x).contiguous()
        per_clip = (x.shape[1] // self.cache_hop() + 1) * self.cache_fft()
        chunk = max(1, CPU_CHUNK_ELEMENTS // per_clip)
        return torch.cat([self.compute(part) for part in x.split(chunk)])

    def compute(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        """The image of a float batch (batch, samples) in one go; `forward` chunks it on CPU."""
        raise NotImplementedError

    def cache_fft(self) -> int:
        """Samples per STFT frame (summed over resolutions): sizes the CPU chunks."""
        return int(self.params.n_fft)

    def cache_hop(self) -> int:
        """Smallest hop in samples: with `cache_fft`, how much frame data one clip makes."""
        return int(self.params.hop_length)


@register
class LogSpectrogram(Frontend):
    """STFT magnitude in dB: every linear frequency bin, the most literal picture of sound."""

    kind = "logspec"
    params_type = StftParams

    def __init__(self, params: StftParams) -> None:
        super().__init__(params)
        self.stft = Stft(params.n_fft, params.win_length, params.hop_length)

    def compute(self, x: Tensor) -> Tensor:
        """dB power spectrogram, one channel."""
        return power_to_db(self.stft(x), self.params.top_db).unsqueeze(1)

    def row_frequencies(self) -> np.ndarray:
        """The FFT bin frequencies."""
        return np.fft.rfftfreq(self.params.n_fft, 1.0 / self.sample_rate)


@register
class LogMel(Frontend):
    """Log-mel spectrogram: perceptually spaced bands, the default input for sound CNNs."""

    kind = "mel"
    params_type = MelParams

    def __init__(self, params: MelParams) -> None:
        super().__init__(params)
        self.mel = MelPower(params)

    def compute(self, x: Tensor) -> Tensor:
        """dB mel power, one channel."""
        return power_to_db(self.mel(x), self.params.top_db).unsqueeze(1)

    def row_frequencies(self) -> np.ndarray:
        """The mel bands' centre frequencies."""
        return mel_centres(self.params)


@register
class Pcen(Frontend):
    """Per-channel energy normalisation of the mel power (Wang et al. 2017; librosa.pcen): each band
    divided by its own recent average, so a steady background (wind, traffic, hum) fades and onsets
    stand out, whatever the recording level. Made for far-field recordings."""

    kind = "pcen"
    params_type = PcenParams
    value_label = "PCEN (level-normalised)"

    def __init__(self, params: PcenParams) -> None:
        super().__init__(params)
        self.mel = MelPower(params)

    def compute(self, x: Tensor) -> Tensor:
        """PCEN of the (scaled) mel power, one channel."""
        return pcen(self.mel(x) * self.params.scale, self.params).unsqueeze(1)

    def row_frequencies(self) -> np.ndarray:
        """The mel bands' centre frequencies."""
        return mel_centres(self.params)


@register
class Mfcc(Frontend):
    """MFCC: orthonormal DCT-II of the log-mel bands (librosa's definition)."""

    kind = "mfcc"
    params_type = MfccParams
    row_label = "MFCC coefficient"
    value_label = "coefficient (colours scaled without c0)"

    def __init__(self, params: MfccParams) -> None:
        super().__init__(params)
        from scipy.fft import dct

        self.mel = MelPower(params)
        basis = dct(np.eye(params.n_mels), type=2, norm="ortho", axis=0)[: params.n_mfcc]
        self.register_buffer("dct", torch.from_numpy(basis).float(), persistent=False)

    def compute(self, x: Tensor) -> Tensor:
        """DCT of the dB mel power, one channel."""
        log_mel = power_to_db(self.mel(x), self.params.top_db)
        return torch.matmul(self.dct, log_mel).unsqueeze(1)

    def image_shape(self, n_samples: int) -> tuple[int, int, int]:
        """(1, n_mfcc, frames): MFCC rows are coefficients, not frequencies."""
        return 1, self.params.n_mfcc, n_samples // self.params.hop_length + 1


@register
class Gammatone(Frontend):
    """Gammatone spectrogram: ERB-spaced 4th-order gammatone bands (FFT approximation).

    Weights are the `gammatone` package's `fft_weights` (Ellis' fft2gammatonemx), applied to
    |STFT| and scaled by 1/n_fft as its `fft_gtgram`; the band magnitude is then put in dB.
    """

    kind = "gammatone"
    params_type = GammatoneParams

    def __init__(self, params: GammatoneParams) -> None:
        super().__init__(params)
        from gammatone.fftweight import fft_weights

        self.stft = Stft(params.n_fft, params.win_length, params.hop_length)
        weights, _ = fft_weights(
            params.n_fft, params.sample_rate, params.n_bands, 1, params.fmin,
            params.sample_rate / 2, params.n_fft // 2 + 1,
        )
        self.register_buffer("weights", torch.from_numpy(weights / params.n_fft).float(), persistent=False)

    def compute(self, x: Tensor) -> Tensor:
        """dB energy of gammatone (ERB) bands, from the STFT magnitude."""
        magnitude = self.stft(x).sqrt()
        bands = torch.matmul(self.weights, magnitude)
        return power_to_db(bands.square(), self.params.top_db).unsqueeze(1)

    def row_frequencies(self) -> np.ndarray:
        """The ERB bands' centre frequencies, lowest first."""
        from gammatone.filters import erb_space

        return erb_space(self.params.fmin, self.sample_rate / 2, self.params.n_bands)[::-1]


@register
class MultiResolutionMel(Frontend):
    """Three log-mels with growing windows (25/50/100 ms), resized to one image size.

    As in Palanisamy et al. 2020: short windows keep onsets sharp, long ones resolve pitch,
    and the three stack like the R, G, B planes an ImageNet CNN expects.
    """

    kind = "multires"
    params_type = MultiresParams

    def __init__(self, params: MultiresParams) -> None:
        super().__init__(params)
        self.channels = nn.ModuleList(MelPower(params.channel(i)) for i in range(len(params.win_ms)))

    @property
    def out_channels(self) -> int:  # type: ignore[override]
        """One channel per window length."""
        return len(self.params.win_ms)

    def compute(self, x: Tensor) -> Tensor:
        """One dB mel image per window length, each resized to height x width."""
        size = (self.params.height, self.params.width)
        planes = [
            F.interpolate(
                power_to_db(mel(x), self.params.top_db).unsqueeze(1), size=size, mode="bilinear", align_corners=False
            )
            for mel in self.channels
        ]
        return torch.cat(planes, dim=1)

    def cache_fft(self) -> int:
        """Samples per frame summed over the resolutions (sizes the CPU chunks)."""
        return sum(self.params.channel(i).n_fft for i in range(len(self.params.win_ms)))

    def cache_hop(self) -> int:
        """The smallest hop of the resolutions (sizes the CPU chunks)."""
        return min(self.params.channel(i).hop_length for i in range(len(self.params.win_ms)))

    def row_frequencies(self) -> np.ndarray:
        """The first resolution's mel centres, interpolated to the image height."""
        centres = mel_centres(self.params.channel(0))
        rows = np.linspace(0, len(centres) - 1, self.params.height)
        return np.interp(rows, np.arange(len(centres)), centres)

    def frame_times(self, n_frames: int, n_samples: int) -> np.ndarray:
        """Column centres spread over the clip: every image has the same width."""
        duration = n_samples / self.sample_rate
        return (np.arange(n_frames) + 0.5) * duration / n_frames

    def image_shape(self, n_samples: int) -> tuple[int, int, int]:
        """(window lengths, height, width), whatever the clip's length."""
        return self.out_channels, self.params.height, self.params.width


# ----------------------------------------------------------------------------- factory


def is_embedding(frontend: Frontend | Mapping[str, Any]) -> bool:
    """Whether a frontend (or its config) gives an audio network's embedding rather than a picture."""
    kind = frontend.get("kind") if isinstance(frontend, Mapping) else frontend.kind
    return kind in FRONTENDS and not FRONTENDS[kind].picture


def create_frontend(config: Mapping[str, Any] | str) -> Frontend:
    """Build a frontend from `{"kind": NAME, **params}` (or just a kind name for defaults)."""
    if isinstance(config, str):
        config = {"kind": config}
    values = dict(config)
    kind = values.pop("kind", None)
    if not isinstance(kind, str) or kind not in FRONTENDS:
        raise ConfigError(f"unknown frontend kind {kind!r} (choose from: {', '.join(FRONTENDS)})")
    cls = FRONTENDS[kind]
    known = {f.name for f in dataclasses.fields(cls.params_type)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"frontend {kind!r}: unknown parameter(s) {shown_keys(unknown)} "
                          f"(known: {', '.join(sorted(known))})")
    try:
        params = cls.params_type(**values)
    except ValidationError as err:
        raise ConfigError(validation_problem(err, f"frontend {kind!r}: ")) from None
    return cls(params)
