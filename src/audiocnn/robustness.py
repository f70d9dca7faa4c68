"""Moved to `audiocnn.training.robustness`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.training.robustness import *  # noqa: F403

warn_moved(__name__, 'audiocnn.training.robustness')
