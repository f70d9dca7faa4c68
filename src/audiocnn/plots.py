"""Moved to `audiocnn.viz.features` and `audiocnn.viz.axes`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.viz.axes import *  # noqa: F403
from audiocnn.viz.features import *  # noqa: F403

warn_moved(__name__, 'audiocnn.viz.features', 'audiocnn.viz.axes')
