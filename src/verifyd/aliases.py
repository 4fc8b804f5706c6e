"""Canonical mailboxes of email addresses, so that aliases of one mailbox share a key.

An address is keyed by undoing only what its provider documents as "the same mailbox"
(``+tag``: the sub-address is cut at the first ``+``; dots: removed from the local part):

- ``gmail.com``, ``googlemail.com`` -- strip ``+tag``, drop dots, key domain ``gmail.com``.
  Gmail ignores dots and delivers ``user+tag`` to ``user`` (Google's "dots don't matter"
  help page); googlemail.com holds the same accounts under Google's older UK/DE name.
- ``me.com``, ``mac.com`` -- strip ``+tag``, keep dots, key domain ``icloud.com``. Apple's
  older names of one iCloud mailbox: ``x@me.com`` is ``x@icloud.com``.
- ``<user>.fastmail.com`` -- key ``user@fastmail.com``, whatever the local part: Fastmail's
  subdomain addressing delivers ``tag@user.fastmail.com`` to ``user@fastmail.com``.
- ``icloud.com``; Microsoft's ``outlook.*``, ``hotmail.*``, ``live.*``, ``msn.com``;
  ``fastmail.com``; ``proton.me``, ``protonmail.com``, ``pm.me``; ``zoho.com``;
  ``yandex.*`` -- strip ``+tag``, keep dots and domain: each documents ``+`` sub-addressing,
  none ignores dots. Domains are never merged across brands (outlook.com and hotmail.com
  are separate mailboxes) nor across Proton's or Yandex's domains, where which names one
  account holds is not something to guess.
- ``yahoo.*`` -- the default below. Yahoo's own disposable addresses are
  ``nickname-keyword@``, but the nickname is chosen apart from the account name, so
  cutting at ``-`` would not find the account: a ``-`` is left as written.
- anything else (GMX, Google Workspace and other custom domains) -- strip ``+tag``, keep
  dots and domain. RFC 5233 sub-addressing with ``+`` is near-universal and a false
  "alias" only raises a flag; dots are significant everywhere but Gmail.

The tag starts at the first ``+``. A local part that is only a tag (``+tag@``), a quoted
local part (``"a+b"@``) and one that Gmail's rules would empty (``...@gmail.com``) are
kept as written: there is no mailbox name to fall back to.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class _Rule:
    """How one provider spells the same mailbox differently."""

    domain: str | None = None  # the domain of the key; None keeps the address's own
    ignore_dots: bool = False


_GMAIL = _Rule(domain="gmail.com", ignore_dots=True)
_ICLOUD = _Rule(domain="icloud.com")
#: Only the deviations from the default rule (strip ``+tag``, keep dots and domain).
_RULES: dict[str, _Rule] = {
    "gmail.com": _GMAIL,
    "googlemail.com": _GMAIL,
    "me.com": _ICLOUD,
    "mac.com": _ICLOUD,
}
_DEFAULT = _Rule()
_FASTMAIL_SUFFIX = ".fastmail.com"


def alias_key(email: str) -> str:
    """The canonical mailbox of a normalised, lower-cased address.

    Plus-address and dot aliases of one mailbox share a key (see the module's table):
    ``j.doe+news@googlemail.com`` and ``jdoe@gmail.com`` are both ``jdoe@gmail.com``.

    Args:
        email: ``local@domain`` as ``Destinations.email`` produces it.

    Returns:
        The key, itself an address; the input unchanged when it has no ``@`` or no
        mailbox name to reduce to.
    """
    local, at, domain = email.rpartition("@")
    if not at or not local or local.startswith('"'):
        return email
    domain = domain.lower()
    if domain.endswith(_FASTMAIL_SUFFIX):
        user = domain.removesuffix(_FASTMAIL_SUFFIX)
        if user and "." not in user:
            # The subdomain names the mailbox; the local part is the tag.
            return f"{user}@fastmail.com"
    rule = _RULES.get(domain, _DEFAULT)
    base = local.partition("+")[0] or local
    if rule.ignore_dots:
        base = base.replace(".", "") or base
    return f"{base}@{rule.domain or domain}"


def is_alias(email: str, key: str | None = None) -> bool:
    """Whether an address is written as an alias, i.e. differs from its key.

    Args:
        email: A normalised, lower-cased address.
        key: Its ``alias_key``, when the caller already has it.

    Returns:
        True for ``jdoe+news@gmail.com`` or ``x@me.com``; False for ``jdoe@gmail.com``.
    """
    return email != (alias_key(email) if key is None else key)
