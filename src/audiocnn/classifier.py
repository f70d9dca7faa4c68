"""Moved to `audiocnn.models.classifier`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.models.classifier import *  # noqa: F403

warn_moved(__name__, 'audiocnn.models.classifier')
