"""The one config object that describes a run: data, frontend, model, training.

A recipe is a YAML file with those four sections; `--set section.key=value` overrides any
entry. The resolved recipe is saved beside every result and inside every bundle, so a number
can always be traced to the settings that produced it. Unknown keys and bad values are
`ConfigError`s that name the file and the key: a typo must never silently fall back to a
default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError
from pydantic.dataclasses import dataclass

from audiocnn.errors import ConfigError
from audiocnn.validation import MAX_NESTING, STRICT, Float, settings_text, shown_keys, validation_problem

#: Largest values that still make sense; beyond them a run would only exhaust memory or time.
MAX_CLIP_SECONDS, MAX_EPOCHS, MAX_BATCH, MAX_SEED = 600.0, 10_000, 65_536, 2**32 - 1

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
NonNegative = Annotated[Float, Field(ge=0)]


@dataclass(frozen=True, config=STRICT)
class DataConfig:
    dataset: str = "esc50"
    clip_seconds: Annotated[Float, Field(gt=0, le=MAX_CLIP_SECONDS)] = 5.0  # every clip is cropped/zero-padded to this
    val_fraction: Annotated[Float, Field(ge=0, lt=0.5)] = 0.1  # validation share carved out of the training folds
    folds: Annotated[int, Field(ge=2, le=100)] | None = None  # folds to assign when the dataset has none
    split: str | None = None  # gtzan: kfold (default) or filtered (the artist-filtered split)
    splits_dir: str | None = None  # gtzan filtered: folder with *_filtered.txt (default ROOT/splits)
    seed: Seed = 0
    limit_per_class: Annotated[int, Field(ge=1)] | None = None  # keep at most N clips per class and fold (smoke tests)


@dataclass(frozen=True, config=STRICT)
class ModelConfig:
    backbone: str = "mobilenetv2_100"
    weights: str = "none"  # none | imagenet | packaged | path to a weights file
    drop_rate: Annotated[Float, Field(ge=0, lt=1)] = 0.2


Mask = Annotated[int, Field(ge=0, le=1024)]


@dataclass(frozen=True, config=STRICT)
class SpecAugmentConfig:
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
    windows of the clip length, at most `max_windows_per_file` per file) and adds `weight` ×
    their cross-entropy to the uniform distribution to the loss. No folder = off.
    """

    folder: str | None = None
    weight: Annotated[Float, Field(ge=0, le=10)] = 0.5
    per_batch: Annotated[int, Field(ge=1, le=1024)] = 8
    max_windows_per_file: Annotated[int, Field(ge=1, le=1000)] = 12


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


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The four sections; each is validated when built (`recipe_from_dict`)."""

    data: DataConfig = field(default_factory=DataConfig)
    frontend: dict[str, Any] = field(default_factory=lambda: {"kind": "mel"})
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_recipe(path: str | Path | None, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe YAML (None: all defaults) and apply `section.key=value` overrides."""
    raw = read_recipe_yaml(path)
    for item in overrides or []:
        _apply_override(raw, item)
    return recipe_from_dict(raw, str(path) if path else "defaults")


def read_recipe_yaml(path: str | Path | None) -> dict[str, Any]:
    """A recipe file as plain data, before validation (None: empty, i.e. all defaults)."""
    if path is None:
        return {}
    return read_yaml_mapping(path, "recipe", "a recipe is a mapping with data/frontend/model/train sections")


class _SettingsLoader(yaml.SafeLoader):
    """YAML's safe loader for settings files, refusing what a settings file never needs and an
    attacker would use: a key given twice in one mapping (plain YAML keeps the last), aliases
    (`*name`: "billion laughs" expansion) and nesting deeper than `MAX_NESTING` (the composer
    recurses per level)."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted in settings files",
                                              self.peek_event().start_mark)
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_NESTING} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _unique_mapping(loader: _SettingsLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value", key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_SettingsLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml_mapping(path: str | Path, what: str, shape: str) -> dict[str, Any]:
    """The mapping a YAML settings file (recipe, study) holds; any problem is a ConfigError naming the file.

    `what` names the kind of file ("recipe file not found"), `shape` says what it must hold.
    """
    path = Path(path)
    text = settings_text(path, what)
    try:
        raw = yaml.load(text, Loader=_SettingsLoader) or {}  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as err:
        detailed = any(word in str(err) for word in ("duplicate key", "aliases", "nested deeper", "plain value"))
        problem = " ".join(str(err).split()) if detailed else str(err).splitlines()[0]
        problem = problem.replace(' in "<unicode string>",', " at")
        raise ConfigError(f"{path}: not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {shape}")
    return raw


def apply_override(raw: dict[str, Any], key: str, value: Any, where: str | None = None) -> None:
    """Set `section.key[.sub]` in plain recipe data to an already parsed value."""
    where = where or f"{key}={value!r}"
    parts = [p for p in key.strip().split(".") if p]
    if len(parts) < 2:
        raise ConfigError(f"{where}: expected SECTION.KEY, e.g. train.lr")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def recipe_from_dict(raw: dict[str, Any], where: str = "recipe") -> Recipe:
    """Build and validate a Recipe from plain data (a YAML file, a bundle's config.json)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a recipe is a mapping with data/frontend/model/train sections")
    unknown = set(raw) - {f.name for f in dataclasses.fields(Recipe)}
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {shown_keys(unknown)} (known: data, frontend, model, train)")
    frontend = raw.get("frontend") or {}
    if not isinstance(frontend, dict):
        raise ConfigError(f"{where}: frontend must be a mapping with a kind")
    frontend = {"kind": "mel", **frontend}
    from audiocnn.features import create_frontend

    try:
        built = create_frontend(frontend)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    train = raw.get("train") or {}
    if not isinstance(train, dict):
        raise ConfigError(f"{where}: train: must be a mapping")
    train = dict(train)
    train["specaugment"] = _section(SpecAugmentConfig, train.get("specaugment"), f"{where}: train.specaugment")
    train["freq_mixstyle"] = _section(FreqMixStyleConfig, train.get("freq_mixstyle"), f"{where}: train.freq_mixstyle")
    train["waveform"] = _section(WaveformAugmentConfig, train.get("waveform"), f"{where}: train.waveform")
    train["distill"] = _section(DistillConfig, train.get("distill"), f"{where}: train.distill")
    train["outliers"] = _section(OutlierConfig, train.get("outliers"), f"{where}: train.outliers")
    recipe = Recipe(
        data=_section(DataConfig, raw.get("data"), f"{where}: data"),
        frontend=dict(frontend),
        model=_section(ModelConfig, raw.get("model"), f"{where}: model"),
        train=_section(TrainConfig, train, f"{where}: train"),
    )
    _validate(recipe, where)
    _check_image_size(built.image_shape(round(recipe.data.clip_seconds * built.sample_rate)), where)
    return recipe


#: The largest image of one clip (64 MB of float32): ESC-50's 5 s log-mel is 32,000 values,
#: a 10-minute clip at 128 mel bands and a 10 ms hop 7.7 million.
MAX_IMAGE_VALUES = 1 << 24


def _check_image_size(shape: tuple[int, int, int], where: str) -> None:
    values = shape[0] * shape[1] * shape[2]
    if values > MAX_IMAGE_VALUES:
        raise ConfigError(f"{where}: data.clip_seconds and the frontend make an image of {' x '.join(map(str, shape))} "
                          f"= {values:,} values per clip, more than {MAX_IMAGE_VALUES:,}: use a longer hop_ms, fewer "
                          "rows or shorter clips")


def _section(cls: type, values: Any, where: str) -> Any:
    if values is None:
        return cls()
    if isinstance(values, cls):
        return values
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: must be a mapping")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {shown_keys(unknown)} (known: {', '.join(known)})")
    try:
        return cls(**values)
    except ValidationError as err:
        raise ConfigError(validation_problem(err, where)) from None


def _validate(recipe: Recipe, where: str) -> None:
    """What no single setting can say alone: settings that must agree with each other."""
    checks = [
        (recipe.train.warmup_epochs <= recipe.train.epochs, "train.warmup_epochs must be in [0, train.epochs]"),
        (recipe.train.select == "last" or recipe.data.val_fraction > 0,
         "train.select best-val needs data.val_fraction > 0"),
        (not recipe.train.distill.teachers or recipe.train.mixup == 0,
         "train.distill does not combine with train.mixup (the teachers' targets are for unmixed images)"),
    ]
    wave = recipe.train.waveform
    checks += [
        (wave.min_snr_db is None or wave.min_snr_db <= wave.max_snr_db, "train.waveform.min_snr_db must be <= max_snr_db"),
        (wave.min_stretch <= wave.max_stretch, "train.waveform needs min_stretch <= max_stretch"),
        (wave.max_rt60_s == 0 or wave.min_rt60_s <= wave.max_rt60_s, "train.waveform needs min_rt60_s <= max_rt60_s"),
        (wave.min_background_snr_db <= wave.max_background_snr_db,
         "train.waveform needs min_background_snr_db <= max_background_snr_db"),
        (wave.min_lowpass_hz is None or wave.min_lowpass_hz <= wave.max_lowpass_hz,
         "train.waveform needs min_lowpass_hz <= max_lowpass_hz"),
        (not wave.copies or wave.transforms,
         "train.waveform.copies > 0 but no transform is on (set gain_db, min_snr_db, pitch_semitones, "
         "min_stretch/max_stretch, shift_seconds, eq_db or min_lowpass_hz)"),
        (wave.copies or not wave.transforms,
         f"train.waveform switches on {', '.join(wave.transforms)} but copies is 0: set train.waveform.copies"),
    ]
    for ok, problem in checks:
        if not ok:
            raise ConfigError(f"{where}: {problem}")


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or len([p for p in key.split(".") if p]) < 2:
        raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. train.lr=3e-4")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"--set {item!r}: cannot parse the value") from None
    apply_override(raw, key, parsed, f"--set {item!r}")
