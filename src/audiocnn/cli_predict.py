"""Moved to `audiocnn.cli.predict`; this alias goes in the next release."""
from audiocnn._moved import warn_moved
from audiocnn.cli.predict import *  # noqa: F403

warn_moved(__name__, 'audiocnn.cli.predict')
