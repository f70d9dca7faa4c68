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
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NotRequired

import torch
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from audiocnn import __version__, atomic
from audiocnn.config import Recipe, recipe_from_dict
from audiocnn.datasets.base import split_fold
from audiocnn.errors import AudiocnnError, BundleError, ConfigError
from audiocnn.features import create_frontend
from audiocnn.models.classifier import AudioClassifier
from audiocnn.validation import Float, settings_text, validation_problem

FORMAT = "audiocnn-bundle"
VERSION = 1
WEIGHTS, CONFIG = "model.safetensors", "config.json"
#: The 8-bit backbone `audiocnn quantize` adds, and its record (`inference.quantize`).
INT8_GRAPH, INT8_INFO = "model.int8.onnx", "int8.json"
#: Every file of a bundle something reads: none may be written over by an output (`owned_file`).
FILES = (CONFIG, WEIGHTS, INT8_GRAPH, INT8_INFO)
#: The most classes a bundle may name (BirdNET's global model has about 6,500).
MAX_LABELS = 20_000
Label = Annotated[str, Field(min_length=1, max_length=200)]


class _Backbone(TypedDict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    in_chans: Annotated[int, Field(ge=1, le=64)]


class _Normalisation(TypedDict):
    """Per-channel statistics of training images in dB; a std below training's floor (1e-6)
    would underflow in float32 and turn every image into NaN."""

    mean: Annotated[list[Annotated[Float, Field(ge=-1e6, le=1e6)]], Field(min_length=1, max_length=64)]
    std: Annotated[list[Annotated[Float, Field(ge=1e-6, le=1e6)]], Field(min_length=1, max_length=64)]


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


@dataclass
class Bundle:
    """A loaded bundle: the model (waveforms to logits), its labels, the recipe it was trained with,
    its metrics and calibration, and the folder it came from. `load` makes one; `save` writes one."""

    model: AudioClassifier
    labels: list[str]
    recipe: Recipe
    metrics: dict[str, Any]
    path: Path
    calibration: dict[str, Any] = field(default_factory=dict)  # temperature, unknown_below, how fitted

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
        **timm_keys(recipe, labels, model),
    }
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


def timm_keys(recipe: Recipe, labels: list[str], model: AudioClassifier) -> dict[str, Any]:
    """The part of config.json timm reads for `timm.create_model("local-dir:BUNDLE", pretrained=True)`.

    The CNN's input is the normalised spectrogram image (`input_size`: channels, rows,
    frames of one window), so `mean`/`std` are the per-channel dB statistics of training
    images, not ImageNet's.
    """
    window = torch.zeros(1, round(recipe.data.clip_seconds * model.frontend.sample_rate))
    with torch.inference_mode():
        channels, rows, frames = model.frontend(window).shape[1:]
    return {
        "architecture": recipe.model.backbone,
        "num_classes": len(labels),
        "label_names": list(labels),
        "model_args": {"in_chans": channels},
        "pretrained_cfg": {
            "input_size": [channels, rows, frames],
            "mean": model.mean.flatten().tolist(),
            "std": model.std.flatten().tolist(),
            "num_classes": len(labels),
        },
    }


class NoBackbone(torch.nn.Module):
    """Stands in for the backbone of a bundle loaded with `backbone=False`; calling it is an error."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Always a BundleError: the weights were not loaded."""
        raise BundleError(f"{self.path}: loaded without its backbone (bundle.load(..., backbone=False))")


def load(path: str | Path, *, backbone: bool = True) -> Bundle:
    """Restore a bundle from its folder.

    Args:
        path: a folder with config.json and model.safetensors (`save`, `audiocnn train`).
        backbone: False skips building the CNN and reading its weights (and importing timm, about
            2 s of start-up): for `predict --runtime int8`, whose 8-bit graph replaces the backbone.

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
                                          "none")
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


def regular_file(path: Path, missing: str | None = None) -> Path:
    """`path` if it is a regular file (a link to one is fine), else one BundleError naming it.

    Checked with `stat`, never by opening: opening a named pipe blocks until something writes
    into it, and a device such as /dev/zero never ends, so a bundle holding one would hang
    whatever reads it. `missing`: the message for a file that is not there (default: "is missing").
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise BundleError(missing or f"{path.parent}: {path.name} is missing") from None
    except OSError as err:
        raise BundleError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not stat.S_ISREG(mode):
        kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a folder" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
        raise BundleError(f"{path}: is {kind}, not a regular file; a bundle's files are read only if they are "
                          "regular files")
    return path


#: A model card is text for people: more than this is not a card, and is not read.
MAX_CARD_BYTES = 256 * 1024


def model_card(folder: Path) -> str | None:
    """The bundle's MODEL_CARD.md, or None when it has none or it cannot be shown: read only if it is
    a regular file of at most `MAX_CARD_BYTES`, bytes that are not UTF-8 replaced, never an error
    (a server describing its model must not fail on the card)."""
    path = Path(folder) / "MODEL_CARD.md"
    try:
        if regular_file(path).stat().st_size > MAX_CARD_BYTES:
            return None
        return path.read_bytes()[:MAX_CARD_BYTES].decode("utf-8", errors="replace")
    except (BundleError, OSError):
        return None


def owned_file(folder: Path, path: Path) -> str | None:
    """What `path` is of the bundle in `folder`, or None: the folder itself, one of its `FILES` (there
    or not: writing one would change the bundle), or any file in it by inode (a link to one, another
    spelling of it). For refusing outputs that would destroy a bundle (`audiocnn export --out`)."""
    def same(a: Path, b: Path) -> bool:
        try:
            return os.path.samefile(a, b)
        except OSError:
            return False

    if same(path, folder):
        return "the bundle folder"
    if path.name in FILES and same(path.parent, folder):
        return path.name
    if path.exists() and folder.is_dir():
        for entry in folder.iterdir():
            if same(path, entry):
                return entry.name
    return None


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
