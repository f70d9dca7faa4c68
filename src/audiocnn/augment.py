"""Moved to `audiocnn.training.augment`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.training.augment import *  # noqa: F403

warn_moved(__name__, 'audiocnn.training.augment')
