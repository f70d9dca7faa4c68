"""One exception type per domain.

Each message names the file (or setting) and the problem, so the CLI can print it as the
whole story: the user never needs a traceback to know what to fix.
"""

from __future__ import annotations


class AudiocnnError(Exception):
    """Base class: anything the CLI reports as one line and a non-zero exit."""


class AudioError(AudiocnnError):
    """A file that cannot be turned into a usable waveform."""


class ConfigError(AudiocnnError):
    """A setting (config file, CLI option, frontend parameter) that is not valid."""


class DatasetError(AudiocnnError):
    """A dataset root, metadata file or split list that cannot be used."""


class DownloadError(DatasetError):
    """A download that failed, or whose checksum does not match."""


class TrainingError(AudiocnnError):
    """Training that cannot give a usable model (e.g. a loss that is no longer a number)."""


class AudiocnnWarning(UserWarning):
    """A problem the user chose to accept (e.g. `--allow-incomplete`): the CLI prints it on one line."""


class BundleError(AudiocnnError):
    """A trained-model bundle that is missing, broken or from another version."""
