"""A trained model as a folder users can share: `model.safetensors` + `config.json`.

`config.json` holds everything needed to turn a recording into the model's input and its
output into names: labels, sample rate, clip length, frontend, backbone, normalisation, and
the recipe and metrics it was trained with. It also carries the keys timm reads
(`architecture`, `num_classes`, `label_names`, `model_args`, `pretrained_cfg`), so
`timm.create_model("local-dir:BUNDLE", pretrained=True)` builds the CNN with its weights for
anyone who wants the image model alone. Weights are read with safetensors only, never
unpickled, so opening a downloaded bundle cannot run code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NotRequired

import torch
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from audiocnn import __version__, atomic
from audiocnn.bundle_files import (  # noqa: F401 - the file names, for the modules that read a bundle's files
    CONFIG,
    FILES,
    INT8_GRAPH,
    INT8_INFO,
    MODEL_CARD,
    WEIGHTS,
    model_card,
    owned_file,
    regular_file,
    write_model_card,
)
from audiocnn.config import Recipe, recipe_from_dict
from audiocnn.datasets.base import split_fold
from audiocnn.errors import AudiocnnError, BundleError, ConfigError
from audiocnn.features import create_frontend, is_embedding
from audiocnn.models.classifier import AudioClassifier
from audiocnn.models.describe import inherited_card, timm_keys
from audiocnn.models.ensemble import EnsembleClassifier
from audiocnn.validation import Float, settings_text, validation_problem

FORMAT = "audiocnn-bundle"
VERSION = 1
#: The most classes a bundle may name (BirdNET's global model has about 6,500).
MAX_LABELS = 20_000
Label = Annotated[str, Field(min_length=1, max_length=200)]


#: The most input channels: a spectrogram has 1-3, an audio network's embedding one per dimension (1,024).
MAX_CHANNELS = 4096


class _Backbone(TypedDict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    in_chans: Annotated[int, Field(ge=1, le=MAX_CHANNELS)]


class _Normalisation(TypedDict):
    """Per-channel statistics of training images in dB; a std below training's floor (1e-6)
    would underflow in float32 and turn every image into NaN."""

    mean: Annotated[list[Annotated[Float, Field(ge=-1e6, le=1e6)]], Field(min_length=1, max_length=MAX_CHANNELS)]
    std: Annotated[list[Annotated[Float, Field(ge=1e-6, le=1e6)]], Field(min_length=1, max_length=MAX_CHANNELS)]


@with_config(ConfigDict(strict=True, allow_inf_nan=False, extra="allow"))
class _Calibration(TypedDict):
    temperature: Annotated[Float, Field(ge=0.05, le=20)]
    unknown_below: Annotated[Float, Field(ge=0, le=1)]


@with_config(ConfigDict(strict=True, allow_inf_nan=False, extra="allow"))
class _Config(TypedDict):
    """What `load` reads from config.json, checked before anything is built from it (the rest,
    such as the timm keys and metrics, is for people and other tools)."""

    labels: Annotated[list[Label], Field(min_length=1, max_length=MAX_LABELS)]
    frontend: dict[str, Any]
    backbone: _Backbone
    normalisation: _Normalisation
    recipe: dict[str, Any]
    metrics: NotRequired[dict[str, Any]]
    calibration: NotRequired[_Calibration]


_CONFIG_SCHEMA = TypeAdapter(_Config)
#: An ensemble's config.json says this `kind`; its members are bundles in its folder (`models.ensemble`).
ENSEMBLE = "ensemble"
#: Most members an ensemble may have: each is a whole model in memory and in every window's cost.
MAX_MEMBERS = 16


@with_config(ConfigDict(strict=True, allow_inf_nan=False, extra="allow"))
class _EnsembleConfig(TypedDict):
    """An ensemble's config.json: its members are folders `members/NAME` inside it, nowhere else."""

    labels: Annotated[list[Label], Field(min_length=1, max_length=MAX_LABELS)]
    members: Annotated[list[Annotated[str, Field(pattern=r"^members/[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]],
                       Field(min_length=2, max_length=MAX_MEMBERS)]
    metrics: NotRequired[dict[str, Any]]
    calibration: NotRequired[_Calibration]


_ENSEMBLE_SCHEMA = TypeAdapter(_EnsembleConfig)


@dataclass
class Bundle:
    """A loaded bundle: the model (waveforms to logits), its labels, the recipe it was trained with,
    its metrics and calibration, and the folder it came from. `load` makes one; `save` writes one."""

    model: AudioClassifier | EnsembleClassifier
    labels: list[str]
    recipe: Recipe  # an ensemble's: its first member's (they hear the same windows at the same rate)
    metrics: dict[str, Any]
    path: Path
    calibration: dict[str, Any] = field(default_factory=dict)  # temperature, unknown_below, how fitted
    members: list[Bundle] = field(default_factory=list)  # an ensemble's models; none for one model

    @property
    def temperature(self) -> float:
        """Logits are divided by this before softmax (1: the model as trained, uncalibrated)."""
        return float(self.calibration.get("temperature", 1.0))

    @property
    def unknown_below(self) -> float:
        """A top probability below this is answered `unknown` (0: never, for an uncalibrated model)."""
        return float(self.calibration.get("unknown_below", 0.0))

    @property
    def sample_rate(self) -> int:
        """Hz the model hears: recordings are resampled to this before windowing."""
        return self.model.frontend.sample_rate

    @property
    def clip_seconds(self) -> float:
        """Length of the clips it was trained on: prediction's default window."""
        return self.recipe.data.clip_seconds

    @property
    def hears_images(self) -> bool:
        """Whether its model is one CNN on spectrogram images (not an ensemble, nor a head on BirdNET's embedding)."""
        return not self.members and not is_embedding(self.model.frontend)

    def require_images(self, action: str) -> None:
        """A BundleError in one line when `action` needs one spectrogram CNN and this is not one."""
        if self.members:
            raise BundleError(f"{self.path}: {action} needs one CNN on spectrogram images; this model is an ensemble "
                              f"of {len(self.members)} (run {action} on a member: {self.members[0].path})")
        if not self.hears_images:
            raise BundleError(f"{self.path}: {action} needs a CNN on spectrogram images; this model is a head on "
                              f"{self.model.frontend.kind}'s embedding, computed by a TFLite graph that torch cannot "
                              "differentiate, quantize or export")


def save(path: str | Path, model: AudioClassifier, labels: list[str], recipe: Recipe,
         metrics: dict[str, Any] | None = None, *, calibration: Any = None) -> Path:
    """Write a bundle folder (created if needed; its files are replaced, config.json last).

    Args:
        path: the bundle folder.
        model: the trained classifier; only its backbone's weights are stored, the frontend and
            normalisation go into config.json.
        labels: class names, in the order of the model's outputs.
        recipe: the recipe it was trained with.
        metrics: results to record (accuracy, the split it left out, ...).
        calibration: a `training.calibration.Calibration` or mapping (temperature, unknown_below).

    Returns:
        `path`, as a Path.

    Example:
        >>> import tempfile
        >>> from audiocnn.bundled import default_model
        >>> shipped = load(default_model())
        >>> folder = save(Path(tempfile.mkdtemp()) / "copy", shipped.model, shipped.labels, shipped.recipe,
        ...               shipped.metrics, calibration=shipped.calibration)
        >>> sorted(p.name for p in folder.iterdir())
        ['config.json', 'model.safetensors']
        >>> load(folder).labels == shipped.labels
        True
        >>> import shutil; shutil.rmtree(folder.parent)
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.backbone.state_dict().items()}
    # Each file goes to a temporary name and is renamed; config.json comes last, so a bundle
    # killed mid-save has none and is saved again by the resumed run (`load` needs it).
    (path / CONFIG).unlink(missing_ok=True)
    with atomic.replaced(path / WEIGHTS) as partial:
        save_file(state, str(partial))
    config = {
        "format": FORMAT,
        "version": VERSION,
        "audiocnn": __version__,
        "labels": list(labels),
        "sample_rate": model.frontend.sample_rate,
        "clip_seconds": recipe.data.clip_seconds,
        "frontend": model.frontend.config(),
        "backbone": {"name": recipe.model.backbone, "in_chans": model.frontend.out_channels},
        "normalisation": {"mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist()},
        "metrics": metrics or {},
        **({"calibration": _calibration_record(calibration)} if calibration else {}),
        "recipe": recipe.to_dict(),
        **({} if is_embedding(model.frontend) else timm_keys(recipe, labels, model)),
    }
    licence = getattr(model.frontend, "licence", None)  # a frontend built on another's model passes on its licence
    if licence:
        write_model_card(path, inherited_card(labels, recipe, metrics or {}, licence))
    atomic.write_text(path / CONFIG, json.dumps(config, indent=2) + "\n")
    return path


def write_calibration(path: str | Path, calibration: Any) -> None:
    """Store a calibration (`training.calibration.Calibration`) in a bundle's config.json, atomically;
    the weights are not touched."""
    path = Path(path)
    config = read_config(path)
    config["calibration"] = _calibration_record(calibration)
    atomic.write_text(path / CONFIG, json.dumps(config, indent=2) + "\n")


def _calibration_record(calibration: Any) -> dict[str, Any]:
    """A `training.calibration.Calibration` (or a plain mapping) as config.json stores it."""
    return calibration.to_dict() if hasattr(calibration, "to_dict") else dict(calibration)


class NoBackbone(torch.nn.Module):
    """Stands in for the backbone of a bundle loaded with `backbone=False`; calling it is an error."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Always a BundleError: the weights were not loaded."""
        raise BundleError(f"{self.path}: loaded without its backbone (bundle.load(..., backbone=False))")


def with_backbone(loaded: Bundle) -> Bundle:
    """`loaded`, its CNNs (an ensemble's: its members') built if `load(..., backbone=False)` skipped them."""
    for model in [loaded, *loaded.members]:
        if isinstance(model.model, AudioClassifier) and isinstance(model.model.backbone, NoBackbone):
            model.model.backbone = load(model.path).model.backbone
    return loaded


def load(path: str | Path, *, backbone: bool = True) -> Bundle:
    """Restore a bundle from its folder.

    Args:
        path: a folder with config.json and model.safetensors (`save`, `audiocnn train`).
        backbone: False skips building the CNN and reading its weights (and importing timm, 2 s of
            start-up) for runs whose 8-bit or checked ONNX graph replaces it (see `with_backbone`).

    Returns:
        The `Bundle`, its model in eval mode.

    Raises:
        BundleError: naming the folder and what is wrong (missing or malformed config, another
            format version, weights that do not match the backbone).

    Example:
        >>> from audiocnn.bundled import default_model
        >>> shipped = load(default_model())
        >>> len(shipped.labels), shipped.labels[:3], shipped.sample_rate, shipped.clip_seconds
        (50, ['dog', 'rooster', 'pig'], 16000, 5.0)
        >>> shipped.recipe.model.backbone
        'mobilenetv2_100'
    """
    path = Path(path)
    config = read_config(path)
    if config.get("kind") == ENSEMBLE:
        return _load_ensemble(path, config, backbone)
    try:
        _CONFIG_SCHEMA.validate_python(config)
    except ValidationError as err:
        raise BundleError(validation_problem(err, f"{path / CONFIG}: ")) from None
    try:
        recipe = recipe_from_dict(config["recipe"], f"{path / CONFIG}: recipe")
        frontend = create_frontend(config["frontend"])
        labels = list(config["labels"])
        norm = config["normalisation"]
        mean, std = norm["mean"], norm["std"]
        if len(mean) != frontend.out_channels or len(std) != len(mean):
            raise ValueError(f"normalisation needs one mean and one std per channel "
                             f"({frontend.out_channels}), got mean {mean}, std {std}")  # else NaN images, empty labels
        if backbone:
            from audiocnn.models.factory import create

            cnn: torch.nn.Module = create(config["backbone"]["name"], len(labels), config["backbone"]["in_chans"],
                                          "none", head=recipe.model.head,
                                          tap=recipe.frontend.get("tap", "embedding"))
        else:
            cnn = NoBackbone(path)
        model = AudioClassifier(frontend, cnn, mean, std)
    except (KeyError, TypeError, ValueError) as err:
        raise BundleError(f"{path / CONFIG}: incomplete or malformed ({type(err).__name__}: {err})") from None
    except AudiocnnError as err:
        raise BundleError(f"{path}: {err}") from None
    if backbone:
        _load_weights(path, model.backbone)
    return Bundle(model.eval(), labels, recipe, dict(config.get("metrics", {})), path,
                  dict(config.get("calibration", {})))


def _load_ensemble(path: Path, config: dict[str, Any], backbone: bool) -> Bundle:
    """An ensemble and its members, checked to name the same classes and hear the same windows."""
    try:
        _ENSEMBLE_SCHEMA.validate_python(config)
    except ValidationError as err:
        raise BundleError(validation_problem(err, f"{path / CONFIG}: ")) from None
    members = []
    for name in config["members"]:
        if read_config(path / name).get("kind") == ENSEMBLE:
            raise BundleError(f"{path / name}: an ensemble's members are single models, not ensembles")
        members.append(load(path / name, backbone=backbone))
    check_members(members, config["labels"])
    first = members[0]
    model = EnsembleClassifier([m.model for m in members], [m.temperature for m in members], first.model.frontend)
    return Bundle(model.eval(), list(config["labels"]), first.recipe, dict(config.get("metrics", {})), path,
                  dict(config.get("calibration", {})), members)


def check_members(members: list[Bundle], labels: list[str]) -> None:
    """A BundleError unless every member is one model naming `labels` in order and hearing the first's windows."""
    first = members[0]
    for member in members:
        if member.members:
            raise BundleError(f"{member.path}: an ensemble's members are single models, not ensembles")
        if member.labels != labels:
            raise BundleError(f"{member.path}: names other classes than {first.path.name} (or in another order)")
        if (member.sample_rate, member.clip_seconds) != (first.sample_rate, first.clip_seconds):
            raise BundleError(f"{member.path}: hears {member.clip_seconds:g} s windows at {member.sample_rate} Hz, "
                              f"{first.path.name} {first.clip_seconds:g} s at {first.sample_rate} Hz; an ensemble's "
                              "members must hear the same windows")


def require_held_out(bundle: Bundle, fold: int) -> None:
    """Refuse to judge a model on test fold `fold` unless it was trained without that fold.

    Scores and explanations of clips a model trained on describe what it memorised, so they
    are refused rather than reported: use `RUN/foldK/model` from `audiocnn cv`, or a bundle
    from `audiocnn train --test-fold K`.
    """
    split = bundle.metrics.get("split")
    if split_fold(bundle.metrics) != fold:
        trained = f"trained for split {split!r}" if split else "not marked with the fold it left out"
        raise ConfigError(f"{bundle.path}: this model was {trained}, so fold {fold} is not held out from it; "
                          f"use RUN/fold{fold}/model from `audiocnn cv` or `audiocnn train --test-fold {fold}`")


def read_config(path: Path) -> dict[str, Any]:
    """A bundle's config.json as plain data, format and version checked; else a BundleError."""
    if not path.is_dir():
        raise BundleError(f"{path}: no such model bundle (a folder with {CONFIG} and {WEIGHTS})")
    regular_file(path / CONFIG, f"{path}: not a model bundle ({CONFIG} is missing)")
    try:
        config = json.loads(settings_text(path / CONFIG, "bundle config"))  # a regular file, not too large, UTF-8
    except ConfigError as err:
        raise BundleError(str(err)) from None
    except json.JSONDecodeError as err:
        raise BundleError(f"{path / CONFIG}: not valid JSON ({err})") from None
    except RecursionError:  # json recurses per level: 100,000 nested brackets
        raise BundleError(f"{path / CONFIG}: not a bundle config (nested too deeply)") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise BundleError(f"{path / CONFIG}: not an audiocnn bundle config")
    if config.get("version") != VERSION:
        raise BundleError(
            f"{path}: bundle format version {config.get('version')} (made by audiocnn {config.get('audiocnn')}); "
            f"this audiocnn {__version__} reads version {VERSION}"
        )
    return config


def _load_weights(path: Path, backbone: torch.nn.Module) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(regular_file(path / WEIGHTS)))
    except FileNotFoundError:
        raise BundleError(f"{path}: {WEIGHTS} is missing") from None
    except (SafetensorError, OSError) as err:
        raise BundleError(f"{path / WEIGHTS}: unreadable ({err})") from None
    try:
        backbone.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise BundleError(f"{path}: weights do not match the backbone in {CONFIG} ({first})") from None
