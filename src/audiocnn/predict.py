"""Moved to `audiocnn.inference.predictor` and `audiocnn.inference.windows`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.inference.predictor import *  # noqa: F403
from audiocnn.inference.windows import *  # noqa: F403

warn_moved(__name__, 'audiocnn.inference.predictor', 'audiocnn.inference.windows')
