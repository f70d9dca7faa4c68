"""The `train` section of a recipe: optimiser, schedule, augmentation, distillation, outliers.

It is the largest section and the one that grows with every training lever, so it lives apart
from the recipe loader (`audiocnn.config`), which re-exports these classes. Every class is a
strict pydantic dataclass: an unknown key or a bad value is an error that names the key.
"""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from audiocnn.validation import STRICT, Float

#: Largest values that still make sense; beyond them a run would only exhaust memory or time.
MAX_EPOCHS, MAX_BATCH, MAX_SEED = 10_000, 65_536, 2**32 - 1

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
NonNegative = Annotated[Float, Field(ge=0)]


Mask = Annotated[int, Field(ge=0, le=1024)]


@dataclass(frozen=True, config=STRICT)
class SpecAugmentConfig:
    """SpecAugment on training images: how many frequency/time masks, and their largest width."""

    freq_masks: Mask = 0
    freq_width: Mask = 0  # largest mask, in image rows
    time_masks: Mask = 0
    time_width: Mask = 0  # largest mask, in image columns


@dataclass(frozen=True, config=STRICT)
class FreqMixStyleConfig:
    """Freq-MixStyle (Schmid et al., DCASE 2022): with chance `p` per batch, each image's
    per-frequency mean and spread are blended with another image's, drawn Beta(alpha, alpha).

    Per-frequency statistics carry most of a microphone's and room's colouring, so mixing them
    trains the model to ignore it (the device-generalisation method of DCASE's low-complexity
    scene classification). p 0 = off.
    """

    p: Annotated[Float, Field(ge=0, le=1)] = 0.0
    alpha: Annotated[Float, Field(gt=0, le=100)] = 0.3


@dataclass(frozen=True, config=STRICT)
class DistillConfig:
    """Knowledge distillation: learn the averaged predictions of trained teacher models too.

    Each teacher is a `cv` run folder (fold K trains on `TEACHER/foldK/model`, which never saw
    fold K's test clips) or, for a model trained on all data, a bundle. Their mean probabilities
    on each training image (the waveform-augmented copies included) are the soft targets; the
    loss is (1 - weight) × cross-entropy with the labels + weight × T² × KL(teachers ‖ student)
    at temperature T. No teachers = off.
    """

    teachers: Annotated[list[str], Field(max_length=32)] = field(default_factory=list)
    weight: Annotated[Float, Field(ge=0, le=1)] = 0.5
    temperature: Annotated[Float, Field(gt=0, le=100)] = 1.0


@dataclass(frozen=True, config=STRICT)
class OutlierConfig:
    """Outlier exposure (Hendrycks et al. 2019): recordings of none of the classes, which the model
    learns to be unsure about, so that `unknown` can catch sounds it was never taught.

    Each training step adds `per_batch` windows drawn from `folder` (any audio files, cut into
    windows of the clip length, at most `max_windows_per_file` per file) and from `noise_floors`
    windows of steady noise made from the seed (`datasets.noise_floors`: hiss, hum, room tone,
    silence, at -95 to -25 dBFS), and adds `weight` × their cross-entropy to the uniform
    distribution to the loss. No folder and no floors = off.
    """

    folder: str | None = None
    noise_floors: Annotated[int, Field(ge=0, le=10_000)] = 0  # windows of made noise floors; 0 = none
    weight: Annotated[Float, Field(ge=0, le=10)] = 0.5
    per_batch: Annotated[int, Field(ge=1, le=1024)] = 8
    max_windows_per_file: Annotated[int, Field(ge=1, le=1000)] = 12

    @property
    def enabled(self) -> bool:
        """Whether the model is shown any outliers."""
        return self.folder is not None or self.noise_floors > 0


@dataclass(frozen=True, config=STRICT)
class WaveformAugmentConfig:
    """Waveform augmentation (audiomentations) of training clips, made real under feature caching.

    Each training clip gets `copies` augmented versions, drawn once (seeded) and cached as
    images beside the originals; every epoch each clip is shown as its original or one of
    its copies, at random. Each enabled transform is applied to a copy with chance `p`.
    """

    copies: Annotated[int, Field(ge=0, le=64)] = 0  # augmented copies per clip; 0 = off
    p: Annotated[Float, Field(gt=0, le=1)] = 0.5
    gain_db: NonNegative = 0.0  # gain drawn from ±gain_db
    min_snr_db: Float | None = None  # coloured noise at an SNR in [min_snr_db, max_snr_db]; null = off
    max_snr_db: Float = 30.0
    pitch_semitones: NonNegative = 0.0  # pitch shift drawn from ±semitones
    min_stretch: Annotated[Float, Field(gt=0)] = 1.0  # time-stretch rate in [min_stretch, max_stretch]; 1, 1 = off
    max_stretch: Annotated[Float, Field(gt=0)] = 1.0
    shift_seconds: NonNegative = 0.0  # time shift drawn from ±seconds (no wrap-around)
    # Band-limiting, as phones, cheap recorders and low-bitrate codecs do: a low-pass at a
    # cutoff in [min_lowpass_hz, max_lowpass_hz] (24-48 dB/octave); null = off.
    min_lowpass_hz: Annotated[Float, Field(gt=0)] | None = None
    max_lowpass_hz: Annotated[Float, Field(gt=0)] = 7500.0
    # Another microphone or room: random bass/treble shelves and a peak, each band's gain drawn
    # from ±eq_db; 0 = off.
    eq_db: NonNegative = 0.0
    # A simulated reverberant room (pyroomacoustics shoebox), its RT60 drawn from
    # [min_rt60_s, max_rt60_s] seconds; max_rt60_s 0 = off.
    min_rt60_s: Annotated[Float, Field(gt=0, le=10)] = 0.2
    max_rt60_s: Annotated[Float, Field(ge=0, le=10)] = 0.0
    # A folder of real ambience recordings (any audio files), mixed in at an SNR drawn from
    # [min_background_snr_db, max_background_snr_db]; null = off.
    backgrounds: str | None = None
    min_background_snr_db: Float = 3.0
    max_background_snr_db: Float = 30.0

    @property
    def transforms(self) -> list[str]:
        """The transforms switched on, by name."""
        on = {"gain": self.gain_db > 0, "noise": self.min_snr_db is not None, "pitch": self.pitch_semitones > 0,
              "stretch": (self.min_stretch, self.max_stretch) != (1.0, 1.0), "shift": self.shift_seconds > 0,
              "room": self.max_rt60_s > 0, "background": self.backgrounds is not None,
              "eq": self.eq_db > 0, "lowpass": self.min_lowpass_hz is not None}
        return [name for name, enabled in on.items() if enabled]


#: Lightning's strategy names for one or more machines (anything else fails deep inside Lightning).
Strategy = Literal["auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "ddp_find_unused_parameters_true",
                   "fsdp", "deepspeed"]


@dataclass(frozen=True, config=STRICT)
class TrainConfig:
    """The recipe's `train` section: optimiser, schedule, epochs, augmentation, distillation, outliers."""

    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = 30
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH)] = 32
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: Annotated[Float, Field(gt=0)] = 1e-3
    weight_decay: NonNegative = 1e-2
    schedule: Literal["cosine", "step", "none"] = "cosine"
    warmup_epochs: Annotated[int, Field(ge=0)] = 0
    step_size: Annotated[int, Field(ge=1)] = 30  # step schedule: epochs between decays
    gamma: Annotated[Float, Field(gt=0)] = 0.1  # step schedule: decay factor
    label_smoothing: Annotated[Float, Field(ge=0, lt=1)] = 0.0
    mixup: NonNegative = 0.0  # Beta(alpha, alpha) mixup of batches; 0 = off
    specaugment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    freq_mixstyle: FreqMixStyleConfig = field(default_factory=FreqMixStyleConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    outliers: OutlierConfig = field(default_factory=OutlierConfig)
    waveform: WaveformAugmentConfig = field(default_factory=WaveformAugmentConfig)
    # auto: bf16 only where it is native
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed", "64-true"] = "auto"
    select: Literal["last", "best-val"] = "last"  # which epoch's weights to keep (val from training folds)
    early_stopping: Annotated[int, Field(ge=1)] | None = None  # stop after N epochs without val improvement
    seed: Seed = 0
    deterministic: bool = False
    threads: Annotated[int, Field(ge=1, le=1024)] | None = None  # torch CPU threads; None = torch's default
    num_workers: Annotated[int, Field(ge=0, le=256)] = 0
    devices: Annotated[int, Field(ge=1, le=1024)] = 1  # processes (GPUs, or CPU ranks) per node; >1 trains with DDP
    num_nodes: Annotated[int, Field(ge=1, le=1024)] = 1  # machines (torchrun / SLURM set the rest of the environment)
    strategy: Strategy = "auto"
