"""audiocnn: turn sound into pictures, and let ImageNet CNNs learn them.

Importing the package changes nothing in the process (no backend, logger or warnings
filter is set, no thread count changed); the subpackages follow the data flow:
`audio` → `features` → `models` → `training` → `bundle` → `inference` / `explain` → `viz`,
with `cli` on top.
"""

from importlib.metadata import PackageNotFoundError, version

from audiocnn.errors import (
    AudiocnnError,
    AudioError,
    BundleError,
    ConfigError,
    DatasetError,
    TrainingError,
)

try:
    __version__ = version("audiocnn")  # one source of truth: pyproject.toml
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
__all__ = ["AudioError", "AudiocnnError", "BundleError", "ConfigError", "DatasetError", "TrainingError", "__version__"]
