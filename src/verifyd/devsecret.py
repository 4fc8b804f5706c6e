"""The development secret: generated once, kept in a file beside the database."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


class SecretFileError(Exception):
    """The secret file exists but holds no secret."""


def location(database_url: str) -> Path | None:
    """Where a development secret is kept: beside a SQLite file, else under ``var/``.

    Returns:
        The path, or ``None`` for an in-memory database (its key lives as long as it).
    """
    if database_url.startswith("sqlite"):
        db_path = database_url.split(":///", 1)[1] if ":///" in database_url else ""
        db_path = db_path.split("?", 1)[0]
        if not db_path or db_path == ":memory:":
            return None
        return Path(db_path).with_suffix(".secret")
    return Path("var") / "verifyd.secret"


def read_or_create(path: Path | None) -> bytes:
    """The secret kept at ``path``, created first when there is none.

    Raises:
        SecretFileError: the file is empty.
    """
    if path is None:
        return secrets.token_bytes(32)
    if not path.exists():
        _create(path)
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise SecretFileError(f"the secret file {path} is empty: delete it or set one")
    return key.encode()


def _create(path: Path) -> None:
    """Write a new secret to ``path`` unless another process got there first.

    The secret is written whole to a private temporary file, then hard-linked into
    place: a concurrent start (``--workers 2``) sees either no file or the complete
    one, never an empty file, and exactly one secret wins.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won; its secret is the one
    finally:
        tmp.unlink(missing_ok=True)
