"""verifyd: account verification by SMS code or email link, under a comparable policy."""

from __future__ import annotations

__version__ = "0.1.0"
