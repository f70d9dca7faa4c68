"""Moved to `audiocnn.training.cv` and `audiocnn.datasets.recipe`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.datasets.recipe import *  # noqa: F403
from audiocnn.training.cv import *  # noqa: F403

warn_moved(__name__, 'audiocnn.training.cv', 'audiocnn.datasets.recipe')
