"""Disposable email domains: the packaged blocklist plus the operator's own file."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from disposable_email_domains import blocklist

from verifyd.settings import ConfigurationError, Settings

_SETTING = "VERIFYD_DISPOSABLE_DOMAINS_FILE"


class DisposableDomains:
    """Answers whether an address's domain, or any parent of it, is disposable.

    The packaged ``disposable-email-domains`` list (upgrading the package updates it)
    plus, optionally, an operator file: one domain per line, ``#`` starts a comment,
    blank lines and surrounding whitespace are ignored, case does not matter. A line may
    be written ``@example.com`` or ``*.example.com``; both mean ``example.com`` and its
    subdomains.

    Args:
        settings: The running settings; their ``disposable_domains_file`` is read now, at
            start-up.
        path: An operator file to read instead of the settings' one.

    Raises:
        ConfigurationError: The file is missing, unreadable, not UTF-8, or has a line
            that is not a domain; the message names the file (and the line).
    """

    def __init__(self, settings: Settings | None = None, *, path: Path | None = None) -> None:
        if path is None and settings is not None:
            path = settings.disposable_domains_file
        # The packaged set is shared, not copied: building one costs only the file.
        extra = _read(path) if path is not None else []
        self._extra = frozenset(extra).difference(blocklist)
        # No suffix longer than the longest listed domain can match: this bounds the work
        # on absurd input to a few set lookups.
        self._longest = max(_packaged_longest(), *map(len, self._extra), 0)

    @property
    def count(self) -> int:
        """How many domains are listed (packaged and the operator's, without duplicates)."""
        return len(blocklist) + len(self._extra)

    def is_disposable(self, domain_or_email: str) -> bool:
        """Whether a domain, or the domain of an address, is disposable.

        A subdomain of a listed domain is disposable too (``x.mailinator.com``). Input
        that is no domain at all is simply not disposable.

        Args:
            domain_or_email: ``example.com`` or ``someone@example.com``.

        Returns:
            True when the domain or one of its parent domains is listed.
        """
        domain = _normalise(domain_or_email.rpartition("@")[2])
        if not domain:
            return False
        # Walk the suffixes from the end: "com", "mailinator.com", "x.mailinator.com", ...
        start = len(domain)
        while start != -1:
            start = domain.rfind(".", 0, start)
            suffix = domain[start + 1 :]
            if len(suffix) > self._longest:
                return False
            if suffix in blocklist or suffix in self._extra:
                return True
        return False


@cache
def _packaged_longest() -> int:
    return max(map(len, blocklist), default=0)


def _normalise(text: str) -> str | None:
    """A domain in the list's spelling (lower-case ASCII, IDNA), or None if it is none."""
    domain = text.strip().lower().rstrip(".")
    if not domain.isascii():
        try:
            # The list spells internationalised domains as xn--; addresses arrive in Unicode.
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if not domain or any(not label for label in domain.split(".")):
        return None
    if not all(c.isalnum() or c in "-_." for c in domain):
        return None
    return domain


def _read(path: Path) -> list[str]:
    """The domains of an operator file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigurationError(f"{_SETTING}: cannot read {path}: {reason}") from exc
    domains = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.partition("#")[0].strip()
        if not entry:
            continue
        domain = _normalise(entry.removeprefix("@").removeprefix("*."))
        if domain is None:
            raise ConfigurationError(f"{_SETTING}: {path}, line {number}: not a domain")
        domains.append(domain)
    return domains
