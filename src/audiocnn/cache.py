"""Moved to `audiocnn.training.cache` and `audiocnn.datasets.images`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.datasets.images import *  # noqa: F403
from audiocnn.training.cache import *  # noqa: F403

warn_moved(__name__, 'audiocnn.training.cache', 'audiocnn.datasets.images')
