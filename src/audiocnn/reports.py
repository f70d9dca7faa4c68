"""Moved to `audiocnn.training.reports` and `audiocnn.viz.confusion`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.training.reports import *  # noqa: F403
from audiocnn.viz.confusion import *  # noqa: F403

warn_moved(__name__, 'audiocnn.training.reports', 'audiocnn.viz.confusion')
