"""The one config object that describes a run: data, frontend, model, training.

A recipe is a YAML file with those four sections; `--set section.key=value` overrides any
entry. The resolved recipe is saved beside every result and inside every bundle, so a number
can always be traced to the settings that produced it. Unknown keys and bad values are
`ConfigError`s that name the file and the key: a typo must never silently fall back to a
default.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from audiocnn.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "esc50"
    clip_seconds: float = 5.0  # every clip is cropped/zero-padded to this length
    val_fraction: float = 0.1  # validation share carved out of the training folds
    folds: int | None = None  # folds to assign when the dataset has none
    split: str | None = None  # gtzan: kfold (default) or filtered (the artist-filtered split)
    splits_dir: str | None = None  # gtzan filtered: folder with *_filtered.txt (default ROOT/splits)
    seed: int = 0
    limit_per_class: int | None = None  # keep at most N clips per class and fold (smoke tests)


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "mobilenetv2_100"
    weights: str = "none"  # none | imagenet | packaged | path to a weights file
    drop_rate: float = 0.2


@dataclass(frozen=True)
class SpecAugmentConfig:
    freq_masks: int = 0
    freq_width: int = 0  # largest mask, in image rows
    time_masks: int = 0
    time_width: int = 0  # largest mask, in image columns


@dataclass(frozen=True)
class WaveformAugmentConfig:
    """Waveform augmentation (audiomentations) of training clips, made real under feature caching.

    Each training clip gets `copies` augmented versions, drawn once (seeded) and cached as
    images beside the originals; every epoch each clip is shown as its original or one of
    its copies, at random. Each enabled transform is applied to a copy with chance `p`.
    """

    copies: int = 0  # augmented copies per clip; 0 = off
    p: float = 0.5
    gain_db: float = 0.0  # gain drawn from ±gain_db
    min_snr_db: float | None = None  # coloured noise at an SNR in [min_snr_db, max_snr_db]; null = off
    max_snr_db: float = 30.0
    pitch_semitones: float = 0.0  # pitch shift drawn from ±semitones
    min_stretch: float = 1.0  # time-stretch rate in [min_stretch, max_stretch]; 1, 1 = off
    max_stretch: float = 1.0
    shift_seconds: float = 0.0  # time shift drawn from ±seconds (no wrap-around)
    # Band-limiting, as phones, cheap recorders and low-bitrate codecs do: a low-pass at a
    # cutoff in [min_lowpass_hz, max_lowpass_hz] (24-48 dB/octave); null = off.
    min_lowpass_hz: float | None = None
    max_lowpass_hz: float = 7500.0
    # Another microphone or room: random bass/treble shelves and a peak, each band's gain drawn
    # from ±eq_db; 0 = off.
    eq_db: float = 0.0

    @property
    def transforms(self) -> list[str]:
        """The transforms switched on, by name."""
        on = {"gain": self.gain_db > 0, "noise": self.min_snr_db is not None, "pitch": self.pitch_semitones > 0,
              "stretch": (self.min_stretch, self.max_stretch) != (1.0, 1.0), "shift": self.shift_seconds > 0,
              "eq": self.eq_db > 0, "lowpass": self.min_lowpass_hz is not None}
        return [name for name, enabled in on.items() if enabled]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "adamw"  # adamw | adam | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-2
    schedule: str = "cosine"  # cosine | step | none
    warmup_epochs: int = 0
    step_size: int = 30  # step schedule: epochs between decays
    gamma: float = 0.1  # step schedule: decay factor
    label_smoothing: float = 0.0
    mixup: float = 0.0  # Beta(alpha, alpha) mixup of batches; 0 = off
    specaugment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    waveform: WaveformAugmentConfig = field(default_factory=WaveformAugmentConfig)
    precision: str = "auto"  # auto | 32-true | bf16-mixed | 16-mixed (auto: bf16 only where it is native)
    select: str = "last"  # last | best-val: which epoch's weights to keep (val from training folds)
    early_stopping: int | None = None  # stop after N epochs without val improvement
    seed: int = 0
    deterministic: bool = False
    threads: int | None = None  # torch CPU threads; None = torch's default
    num_workers: int = 0
    devices: int = 1  # processes (GPUs, or CPU ranks) per node; >1 trains with DDP
    num_nodes: int = 1  # machines (torchrun / SLURM set the rest of the environment)
    strategy: str = "auto"  # Lightning strategy: auto | ddp | ddp_spawn | ...


@dataclass(frozen=True)
class Recipe:
    data: DataConfig = field(default_factory=DataConfig)
    frontend: dict[str, Any] = field(default_factory=lambda: {"kind": "mel"})
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_CHOICES = {
    ("train", "optimizer"): ("adamw", "adam", "sgd"),
    ("train", "schedule"): ("cosine", "step", "none"),
    ("train", "precision"): ("auto", "32-true", "bf16-mixed", "16-mixed", "64-true"),
    ("train", "select"): ("last", "best-val"),
    # Lightning's strategy names for one or more machines (anything else fails deep inside Lightning)
    ("train", "strategy"): ("auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "ddp_find_unused_parameters_true",
                            "fsdp", "deepspeed"),
}
#: Largest values that still make sense; beyond them a run would only exhaust memory or time.
MAX_CLIP_SECONDS, MAX_EPOCHS, MAX_BATCH, MAX_SEED = 600.0, 10_000, 65_536, 2**32 - 1


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


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml_mapping(path: str | Path, what: str, shape: str) -> dict[str, Any]:
    """The mapping a YAML settings file (recipe, study) holds; any problem is a ConfigError naming the file.

    `what` names the kind of file ("recipe file not found"), `shape` says what it must hold.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as err:
        problem = " ".join(str(err).split()) if "duplicate key" in str(err) else str(err).splitlines()[0]
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
    unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(Recipe)})
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)} (known: data, frontend, model, train)")
    frontend = raw.get("frontend") or {}
    if not isinstance(frontend, dict):
        raise ConfigError(f"{where}: frontend must be a mapping with a kind")
    frontend = {"kind": "mel", **frontend}
    from audiocnn.features import create_frontend

    try:
        create_frontend(frontend)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    train = dict(raw.get("train") or {})
    train["specaugment"] = _section(SpecAugmentConfig, train.get("specaugment"), f"{where}: train.specaugment")
    train["waveform"] = _section(WaveformAugmentConfig, train.get("waveform"), f"{where}: train.waveform")
    recipe = Recipe(
        data=_section(DataConfig, raw.get("data"), f"{where}: data"),
        frontend=dict(frontend),
        model=_section(ModelConfig, raw.get("model"), f"{where}: model"),
        train=_section(TrainConfig, train, f"{where}: train"),
    )
    _validate(recipe, where)
    return recipe


def _section(cls: type, values: Any, where: str) -> Any:
    if values is None:
        return cls()
    if isinstance(values, cls):
        return values
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: must be a mapping")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    return cls(**{name: _checked(known[name], value, where) for name, value in values.items()})


def _checked(spec: dataclasses.Field, value: Any, where: str) -> Any:
    """Catch `lr: fast` or `epochs: 2.5` at load time rather than mid-training.

    Float fields also take numeric strings: YAML 1.1 reads `1e-3` (no dot) as a string.
    """
    expected = str(spec.type)
    if value is None:
        if "None" not in expected:
            raise ConfigError(f"{where}.{spec.name}: must not be empty")
        return value
    if expected.startswith("float") and isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if "bool" in expected:
        ok = isinstance(value, bool)
    elif expected.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected.startswith("float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif expected.startswith("str"):
        ok = isinstance(value, str)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{where}.{spec.name}: expected {expected.replace(' | None', '')}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):  # `lr: .inf` would train to NaN
        raise ConfigError(f"{where}.{spec.name}: must be a finite number, got {value!r}")
    return value


def _validate(recipe: Recipe, where: str) -> None:
    for (section, key), choices in _CHOICES.items():
        value = getattr(getattr(recipe, section), key)
        if value not in choices:
            raise ConfigError(f"{where}: {section}.{key} is {value!r}; choose from {', '.join(choices)}")
    checks = [
        (0 < recipe.data.clip_seconds <= MAX_CLIP_SECONDS,
         f"data.clip_seconds must be in (0, {MAX_CLIP_SECONDS:g}] (a clip is one CNN input)"),
        (0 <= recipe.data.seed <= MAX_SEED and 0 <= recipe.train.seed <= MAX_SEED,
         f"data.seed and train.seed must be in [0, {MAX_SEED}]"),
        (recipe.data.folds is None or 2 <= recipe.data.folds <= 100, "data.folds must be in [2, 100]"),
        (recipe.data.limit_per_class is None or recipe.data.limit_per_class >= 1, "data.limit_per_class must be >= 1"),
        (0 <= recipe.model.drop_rate < 1, "model.drop_rate must be in [0, 1)"),
        (recipe.train.epochs <= MAX_EPOCHS, f"train.epochs must be at most {MAX_EPOCHS}"),
        (recipe.train.batch_size <= MAX_BATCH, f"train.batch_size must be at most {MAX_BATCH}"),
        (0 <= recipe.train.warmup_epochs <= recipe.train.epochs, "train.warmup_epochs must be in [0, train.epochs]"),
        (recipe.train.weight_decay >= 0, "train.weight_decay must be >= 0"),
        (recipe.train.threads is None or 1 <= recipe.train.threads <= 1024, "train.threads must be in [1, 1024]"),
        (0 <= recipe.train.num_workers <= 256, "train.num_workers must be in [0, 256]"),
        (1 <= recipe.train.devices <= 1024 and 1 <= recipe.train.num_nodes <= 1024,
         "train.devices and train.num_nodes must be in [1, 1024]"),
        (recipe.train.early_stopping is None or recipe.train.early_stopping >= 1, "train.early_stopping must be >= 1"),
        (0 <= recipe.data.val_fraction < 0.5, "data.val_fraction must be in [0, 0.5)"),
        (recipe.train.epochs >= 1, "train.epochs must be at least 1"),
        (recipe.train.batch_size >= 1, "train.batch_size must be at least 1"),
        (recipe.train.lr > 0, "train.lr must be positive"),
        (recipe.train.mixup >= 0, "train.mixup must be >= 0"),
        (0 <= recipe.train.label_smoothing < 1, "train.label_smoothing must be in [0, 1)"),
        (recipe.train.select == "last" or recipe.data.val_fraction > 0,
         "train.select best-val needs data.val_fraction > 0"),
    ]
    wave = recipe.train.waveform
    checks += [
        (wave.copies >= 0, "train.waveform.copies must be >= 0"),
        (0 < wave.p <= 1, "train.waveform.p must be in (0, 1]"),
        (min(wave.gain_db, wave.pitch_semitones, wave.shift_seconds, wave.eq_db) >= 0,
         "train.waveform gain_db, pitch_semitones, shift_seconds and eq_db are ± ranges: give them as >= 0"),
        (wave.min_snr_db is None or wave.min_snr_db <= wave.max_snr_db, "train.waveform.min_snr_db must be <= max_snr_db"),
        (0 < wave.min_stretch <= wave.max_stretch, "train.waveform needs 0 < min_stretch <= max_stretch"),
        (wave.min_lowpass_hz is None or 0 < wave.min_lowpass_hz <= wave.max_lowpass_hz,
         "train.waveform needs 0 < min_lowpass_hz <= max_lowpass_hz"),
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
