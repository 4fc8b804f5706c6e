"""``python -m verifyd.cli``: the same command as the ``verifyd`` console script."""

from __future__ import annotations

import sys

from verifyd.cli import main

sys.exit(main())
