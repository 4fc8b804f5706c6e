"""The ``redirect_url`` allow-list: exact origin, and a path prefix when one is configured.

A URL is normalised before it is matched, and the normalised form is the one stored and
redirected to, so what was checked is what the browser is sent to. Matched raw,
``https://good.example/welcome/../../evil`` and ``/welcome/%2e%2e/%2e%2e/evil`` passed a
``/welcome`` prefix while the browser (which resolves dot segments, encoded or not) went
to ``/evil``. Normalising (RFC 3986 section 6.2.2):

* percent-encoded unreserved characters are decoded (``%2e`` is ``.``, ``%7E`` is ``~``),
  other percent-encodings get upper-case hex;
* dot segments are removed (RFC 3986 section 5.2.4, ``remove_dot_segments``);
* scheme and host are lower-cased.

Refused outright, whatever the allow-list: anything but printable ASCII, backslashes
(browsers read ``\\`` as ``/``), userinfo (``https://good.example@evil.example``), a
percent sign in the host, a malformed percent-encoding, and in the path an encoded slash
or backslash (``%2F``, ``%5C``) or an encoded percent sign (``%25``: a double encoding,
which a second decoder would turn into dots or slashes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit, urlunsplit

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%(?P<hex>[0-9A-Fa-f]{2})")
_MALFORMED_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
#: Encoded in a path, these would become separators (or dots) for a second decoder.
_ENCODED_SEPARATORS = ("%2F", "%5C", "%25")


def _decode_unreserved(text: str) -> str:
    """Decode ``%XX`` where it is an unreserved character; upper-case the rest."""

    def one(match: re.Match[str]) -> str:
        char = chr(int(match["hex"], 16))
        return char if char in _UNRESERVED else "%" + match["hex"].upper()

    return _PERCENT.sub(one, text)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4: resolve ``.`` and ``..`` segments, never above the root."""
    out: list[str] = []
    rest = path
    while rest:
        if rest.startswith("../"):
            rest = rest[3:]
        elif rest.startswith("./"):
            rest = rest[2:]
        elif rest.startswith("/./"):
            rest = rest[2:]
        elif rest == "/.":
            rest = "/"
        elif rest.startswith("/../"):
            rest = rest[3:]
            if out:
                out.pop()
        elif rest == "/..":
            rest = "/"
            if out:
                out.pop()
        elif rest in (".", ".."):
            rest = ""
        else:
            cut = rest.find("/", 1)
            segment, rest = (rest, "") if cut == -1 else (rest[:cut], rest[cut:])
            out.append(segment)
    return "".join(out)


def normalise(url: str) -> str | None:
    """``url`` in the form it is matched and redirected to, or ``None`` when it is refused.

    Args:
        url: A ``redirect_url`` as a client sent it.

    Returns:
        The normalised absolute ``http``/``https`` URL; ``None`` for anything refused
        (see the module docstring).
    """
    if not url.isascii() or not url.isprintable() or " " in url or "\\" in url:
        return None
    if _MALFORMED_PERCENT.search(url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return None
    scheme, netloc = parts.scheme.lower(), parts.netloc.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    if "@" in netloc or "%" in netloc:
        return None
    path = _decode_unreserved(parts.path)
    if any(encoded in path.upper() for encoded in _ENCODED_SEPARATORS):
        return None
    path = remove_dot_segments(path)
    if any(segment in (".", "..") for segment in path.split("/")):  # cannot happen; be sure
        return None
    return urlunsplit(SplitResult(scheme, netloc, path, parts.query, parts.fragment))


def checked(url: str, allowlist: Iterable[str]) -> str | None:
    """The normalised ``url`` when the allow-list admits it, else ``None``.

    An entry ``https://app.example/welcome`` allows that origin (scheme, host and port
    compared exactly, case-insensitively) with the path ``/welcome`` or below it (at a
    ``/`` boundary); an entry without a path allows the whole origin. The URL is matched
    after :func:`normalise`, and the entries are normalised the same way.
    """
    clean = normalise(url)
    if clean is None:
        return None
    parts = urlsplit(clean)
    for entry in allowlist:
        a = urlsplit(normalise(entry) or "")
        if not a.scheme or (a.scheme, a.netloc) != (parts.scheme, parts.netloc):
            continue
        prefix = a.path.rstrip("/")
        if not prefix or parts.path == prefix or parts.path.startswith(prefix + "/"):
            return clean
    return None


def allowed(url: str, allowlist: Iterable[str]) -> bool:
    """Whether ``url`` may be a signup's ``redirect_url`` (see :func:`checked`)."""
    return checked(url, allowlist) is not None
