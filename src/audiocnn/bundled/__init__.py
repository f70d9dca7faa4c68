"""The model that ships with audiocnn: MobileNetV2 trained on all of ESC-50 with recipes/cpu.yaml.

Its model card (data, recipe, cross-validated accuracy, license) is MODEL_CARD.md in its
folder. ESC-50 is licensed CC BY-NC 3.0, so these weights are for non-commercial use.
"""

from __future__ import annotations

from pathlib import Path

from audiocnn.errors import BundleError

DEFAULT_MODEL_NAME = "esc50-mobilenetv2"


def bundled_models() -> dict[str, Path]:
    """Every model that ships with audiocnn, by name (its folder's name), the default first."""
    folders = sorted(p for p in Path(__file__).parent.iterdir() if (p / "config.json").is_file())
    return dict(sorted(((p.name, p) for p in folders), key=lambda item: item[0] != DEFAULT_MODEL_NAME))


def model_path(text: str) -> Path:
    """What `--model TEXT` means: the folder TEXT, or, when there is none, the bundled model named TEXT."""
    path = Path(text)
    if not path.exists() and text in bundled_models():
        return bundled_models()[text]
    return path


def default_model() -> Path:
    """The bundled model's folder; a clear error if this installation lacks it."""
    path = Path(__file__).parent / DEFAULT_MODEL_NAME
    if not (path / "config.json").is_file():
        raise BundleError(f"{path}: the bundled model is missing from this installation; pass --model BUNDLE")
    return path
