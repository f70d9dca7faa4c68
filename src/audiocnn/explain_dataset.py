"""Moved to `audiocnn.explain.dataset` and `audiocnn.viz.class_profiles`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.explain.dataset import *  # noqa: F403
from audiocnn.viz.class_profiles import *  # noqa: F403

warn_moved(__name__, 'audiocnn.explain.dataset', 'audiocnn.viz.class_profiles')
