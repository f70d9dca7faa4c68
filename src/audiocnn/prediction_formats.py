"""Moved to `audiocnn.inference.formats`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.inference.formats import *  # noqa: F403

warn_moved(__name__, 'audiocnn.inference.formats')
