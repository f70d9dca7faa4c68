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

from audiocnn.config.train import (
    DistillConfig,
    FreqMixStyleConfig,
    OutlierConfig,
    Seed,
    SpecAugmentConfig,
    TrainConfig,
    WaveformAugmentConfig,
)
from audiocnn.errors import ConfigError
from audiocnn.validation import MAX_NESTING, STRICT, Float, settings_text, shown_keys, validation_problem

#: The longest clip that still makes sense; beyond it a run would only exhaust memory or time.
MAX_CLIP_SECONDS = 600.0


@dataclass(frozen=True, config=STRICT)
class DataConfig:
    """The recipe's `data` section: which dataset and which of its clips, their length, folds and validation share."""

    dataset: str = "esc50"
    clip_seconds: Annotated[Float, Field(gt=0, le=MAX_CLIP_SECONDS)] = 5.0  # every clip is cropped/zero-padded to this
    val_fraction: Annotated[Float, Field(ge=0, lt=0.5)] = 0.1  # validation share carved out of the training folds
    folds: Annotated[int, Field(ge=2, le=100)] | None = None  # folds to assign when the dataset has none
    split: str | None = None  # gtzan: kfold (default) or filtered (the artist-filtered split)
    splits_dir: str | None = None  # gtzan filtered: folder with *_filtered.txt (default ROOT/splits)
    seed: Seed = 0
    limit_per_class: Annotated[int, Field(ge=1)] | None = None  # keep at most N clips per class and fold (smoke tests)
    label_column: str | None = None  # annotations: the Raven column holding labels (default: found by its name)
    negatives: Annotated[int, Field(ge=0)] | None = None  # annotations: clips per recording drawn from unannotated time
    negative_label: str | None = None  # annotations: those clips' label (default "background")


#: The heads a recipe may train on a frozen audio network's embedding (`models.heads`).
HeadKind = Literal["linear", "mlp"]


@dataclass(frozen=True, config=STRICT)
class ModelConfig:
    """The recipe's `model` section: the timm backbone (or `birdnet-v2.4`), its starting weights and dropout."""

    backbone: str = "mobilenetv2_100"  # a timm name, or birdnet-v2.4 (a head on BirdNET's embedding)
    weights: str = "none"  # none | imagenet | packaged | path to a weights file
    drop_rate: Annotated[Float, Field(ge=0, lt=1)] = 0.2
    head: HeadKind = "linear"  # birdnet-v2.4 only: linear, or mlp (one hidden layer)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The four sections; each is validated when built (`recipe_from_dict`)."""

    data: DataConfig = field(default_factory=DataConfig)
    frontend: dict[str, Any] = field(default_factory=lambda: {"kind": "mel"})
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data (what recipe.json and a bundle's config.json store)."""
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
    raw = parse_settings(settings_text(path, what), str(path)) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {shape}")
    return raw


def parse_settings(text: str, where: str) -> Any:
    """YAML text of settings (a file, or one `--set` value) parsed by the settings loader: no aliases
    ("billion laughs": `--set 'train.seed=[&a0 …]'` went past 4 GiB), no duplicate keys, bounded
    nesting; any problem is one ConfigError that starts with `where`."""
    try:
        return yaml.load(text, Loader=_SettingsLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as err:
        detailed = any(word in str(err) for word in ("duplicate key", "aliases", "nested deeper", "plain value"))
        problem = " ".join(str(err).split()) if detailed else str(err).splitlines()[0]
        problem = problem.replace(' in "<unicode string>",', " at")
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None


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
    from audiocnn.features.birdnet import KIND as BIRDNET  # the frontend kind and backbone name: a recipe names both

    audio_net = recipe.model.backbone == BIRDNET
    checks += [
        (audio_net == (recipe.frontend.get("kind") == BIRDNET),
         f"model.backbone {BIRDNET} and frontend.kind {BIRDNET} go together: BirdNET hears the audio itself and "
         "the model trained is a head on what it hears (see recipes/birdnet.yaml)"),
        (audio_net or recipe.model.head == "linear",
         f"model.head is for a head on an audio network's embedding (backbone {BIRDNET}); a CNN has its own"),
        (not audio_net or recipe.train.specaugment == SpecAugmentConfig(),
         "train.specaugment masks spectrogram rows and columns; a BirdNET embedding has neither (use "
         "train.waveform copies, which are embedded)"),
        (not audio_net or recipe.train.freq_mixstyle.p == 0,
         "train.freq_mixstyle mixes spectrogram rows' statistics; a BirdNET embedding has none (use train.waveform "
         "copies, which are embedded)"),
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
    parsed = parse_settings(value, f"--set {item!r}") if value.strip() else None
    apply_override(raw, key, parsed, f"--set {item!r}")
