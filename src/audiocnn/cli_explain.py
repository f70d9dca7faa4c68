"""Moved to `audiocnn.cli.explain`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.cli.explain import *  # noqa: F403

warn_moved(__name__, 'audiocnn.cli.explain')
