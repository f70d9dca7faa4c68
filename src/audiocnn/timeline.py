"""Moved to `audiocnn.viz.timeline` and `audiocnn.inference.overview`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.inference.overview import *  # noqa: F403
from audiocnn.viz.timeline import *  # noqa: F403

warn_moved(__name__, 'audiocnn.viz.timeline', 'audiocnn.inference.overview')
