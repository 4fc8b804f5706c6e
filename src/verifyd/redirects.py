"""The ``redirect_url`` allow-list: exact origin, and a path prefix when one is configured."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit


def allowed(url: str, allowlist: Iterable[str]) -> bool:
    """Whether ``url`` may be a signup's ``redirect_url``.

    An entry ``https://app.example/welcome`` allows that origin (scheme, host and port
    compared exactly, case-insensitively) with the path ``/welcome`` or below it; an
    entry without a path allows the whole origin.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    for entry in allowlist:
        a = urlsplit(entry)
        if f"{a.scheme}://{a.netloc}".lower() != origin:
            continue
        prefix = a.path.rstrip("/")
        if not prefix or parts.path == prefix or parts.path.startswith(prefix + "/"):
            return True
    return False
