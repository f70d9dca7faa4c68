"""Moved to `audiocnn.inference.files` and `audiocnn.viz.timeline`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.inference.files import *  # noqa: F403
from audiocnn.viz.timeline import *  # noqa: F403

warn_moved(__name__, 'audiocnn.inference.files', 'audiocnn.viz.timeline')
