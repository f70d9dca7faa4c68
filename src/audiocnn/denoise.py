"""Moved to `audiocnn.inference.denoise`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.inference.denoise import *  # noqa: F403

warn_moved(__name__, 'audiocnn.inference.denoise')
