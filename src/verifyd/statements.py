"""Core statements of the hot paths, built once and executed with parameters.

Building a Core statement per call (coercing every literal, computing its cache key)
costs more CPU than SQLite's own work; these compile once and are reused.
"""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from verifyd.models import Account, Identity, Message, Verification, table_of

accounts = table_of(Account)
verifications = table_of(Verification)
identities = table_of(Identity)
messages = table_of(Message)

_v, _a = verifications.c, accounts.c
INSERT_ACCOUNT = insert(accounts)
INSERT_VERIFICATION = insert(verifications)
INSERT_MESSAGE = insert(messages)
ATTEMPT = (
    update(verifications)
    .where(
        _v.id == bindparam("vid"),
        _v.status == "pending",
        _v.attempts < _v.max_checks,
        _v.expires_at > bindparam("now"),
    )
    .values(attempts=_v.attempts + 1)
    .returning(*verifications.c)
)
CONFIRM = (
    update(verifications)
    .where(
        _v.secret_hash == bindparam("digest"),
        _v.status == "pending",
        _v.expires_at > bindparam("now"),
        _v.shadow.is_(False),
    )
    .values(attempts=_v.attempts + 1)
    .returning(*verifications.c)
)
APPROVE = (
    update(verifications)
    .where(_v.id == bindparam("vid"), _v.status == "pending")
    .values(status="approved", approved_at=bindparam("now"))
    .returning(*verifications.c)
)
SET_STATUS = (
    update(verifications)
    .where(_v.id == bindparam("vid"), _v.status == "pending")
    .values(status=bindparam("status"))
)
#: An approved verification whose identity another account claimed first.
CANCEL = update(verifications).where(_v.id == bindparam("vid")).values(status="canceled")
VERIFIED_AT = {
    "phone": update(accounts)
    .where(_a.id == bindparam("aid"))
    .values(phone_verified_at=bindparam("now"))
    .returning(*accounts.c),
    "email": update(accounts)
    .where(_a.id == bindparam("aid"))
    .values(email_verified_at=bindparam("now"))
    .returning(*accounts.c),
}
UNVERIFY = {
    identity: update(accounts)
    .where(_a.id == bindparam("aid"))
    .values({f"{identity}_verified_at": None})
    for identity in ("phone", "email")
}
ACTIVATE = (
    update(accounts)
    .where(_a.id == bindparam("aid"))
    .values(status="active", activated_at=bindparam("now"))
)
CLAIM_IDENTITY = {
    name: dialect.insert(identities)
    .on_conflict_do_nothing(index_elements=["kind", "value"])
    .returning(identities.c.id)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
_i = identities.c
#: Whether an active account owns this identity (one index probe).
TAKEN = select(_i.id).where(_i.kind == bindparam("kind"), _i.value == bindparam("value"))
STATUS_OF = select(_v.status, _v.expires_at).where(_v.id == bindparam("vid"))
