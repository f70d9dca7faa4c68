"""Old module names kept for one release, as timm does when modules move.

Each old module (`audiocnn.train`, `audiocnn.predict`, ...) is a short alias that
re-exports its new home and warns once with a FutureWarning naming it.
"""

from __future__ import annotations

import warnings


def warn_moved(old: str, *new: str) -> None:
    warnings.warn(f"{old} has moved to {' and '.join(new)}; the old name will be removed in the next release",
                  FutureWarning, stacklevel=3)
