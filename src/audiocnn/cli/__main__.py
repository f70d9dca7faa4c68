"""`python -m audiocnn.cli` is the same as the `audiocnn` command."""

import sys

from audiocnn.cli import main

sys.exit(main())
