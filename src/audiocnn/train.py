"""Moved to `audiocnn.training.fit` and `audiocnn.training.module`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.training.fit import *  # noqa: F403
from audiocnn.training.module import *  # noqa: F403

warn_moved(__name__, 'audiocnn.training.fit', 'audiocnn.training.module')
