"""Moved to `audiocnn.viz.explanations`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.viz.explanations import *  # noqa: F403

warn_moved(__name__, 'audiocnn.viz.explanations')
