"""Core statements of the hot paths, built once and executed with parameters.

Building a Core statement per call (coercing every literal, computing its cache key)
costs more CPU than SQLite's own work; these compile once and are reused, each
wrapped in a :class:`~verifyd.prepared.Prepared` that runs it on SQLite's driver.
"""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from verifyd.models import Account, Identity, Message, Verification, table_of
from verifyd.prepared import Prepared

accounts = table_of(Account)
verifications = table_of(Verification)
identities = table_of(Identity)
messages = table_of(Message)

_v, _a = verifications.c, accounts.c
# What each hot statement hands back, and no more: every column returned is one more
# value to convert (a datetime parsed from text, on SQLite) on every request.
#: A verification as a check or a confirm needs it (which secret, whose, how many tries).
ATTEMPTED = (
    _v.id,
    _v.account_id,
    _v.channel,
    _v.identity,
    _v.destination,
    _v.sandbox,
    _v.secret_hash,
    _v.attempts,
    _v.max_checks,
    _v.policy_version,
    _v.arm,
    _v.created_at,
    _v.viewed_at,
)
#: A verification as ``views.verification`` renders it.
SHOWN = (
    _v.id,
    _v.channel,
    _v.status,
    _v.identity,
    _v.destination,
    _v.expires_at,
    _v.max_checks,
    _v.attempts,
    _v.resend_available_at,
    _v.delivery,
)
#: An account as an approval decides on it and ``views.account`` renders it.
APPROVING = (
    _a.id,
    _a.status,
    _a.phone,
    _a.email,
    _a.needs,
    _a.needs_all,
    _a.phone_verified_at,
    _a.email_verified_at,
    _a.policy_version,
    _a.arm,
    _a.redirect_url,
    _a.created_at,
    _a.label,
)
INSERT_ACCOUNT = Prepared(insert(accounts))
INSERT_VERIFICATION = Prepared(insert(verifications))
INSERT_MESSAGE = Prepared(insert(messages))
ATTEMPT = Prepared(
    update(verifications)
    .where(
        _v.id == bindparam("vid"),
        _v.status == "pending",
        _v.attempts < _v.max_checks,
        _v.expires_at > bindparam("now"),
    )
    .values(attempts=_v.attempts + 1)
    .returning(*ATTEMPTED),
    ATTEMPTED,
)
CONFIRM = Prepared(
    update(verifications)
    .where(
        _v.secret_hash == bindparam("digest"),
        _v.status == "pending",
        _v.expires_at > bindparam("now"),
        _v.shadow.is_(False),
    )
    .values(attempts=_v.attempts + 1)
    .returning(*ATTEMPTED),
    ATTEMPTED,
)
APPROVE = Prepared(
    update(verifications)
    .where(_v.id == bindparam("vid"), _v.status == "pending")
    .values(status="approved", approved_at=bindparam("now"))
    .returning(*SHOWN),
    SHOWN,
)
SET_STATUS = Prepared(
    update(verifications)
    .where(_v.id == bindparam("vid"), _v.status == "pending")
    .values(status=bindparam("status"))
)
#: An approved verification whose identity another account claimed first.
CANCEL = Prepared(update(verifications).where(_v.id == bindparam("vid")).values(status="canceled"))
VERIFIED_AT = {
    identity: Prepared(
        update(accounts)
        .where(_a.id == bindparam("aid"))
        .values({f"{identity}_verified_at": bindparam("now")})
        .returning(*APPROVING),
        APPROVING,
    )
    for identity in ("phone", "email")
}
UNVERIFY = {
    identity: Prepared(
        update(accounts).where(_a.id == bindparam("aid")).values({f"{identity}_verified_at": None})
    )
    for identity in ("phone", "email")
}
ACTIVATE = Prepared(
    update(accounts)
    .where(_a.id == bindparam("aid"))
    .values(status="active", activated_at=bindparam("now"))
)
CLAIM_IDENTITY = {
    name: Prepared(
        dialect.insert(identities)
        .on_conflict_do_nothing(index_elements=["kind", "value"])
        .returning(identities.c.id),
        (identities.c.id,),
    )
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
_i = identities.c
#: Whether an active account owns this identity (one index probe).
TAKEN = Prepared(
    select(_i.id).where(_i.kind == bindparam("kind"), _i.value == bindparam("value")), (_i.id,)
)
#: A verification as a resend decides on it (locked against a concurrent resend).
RESENDING = (
    _v.id,
    _v.channel,
    _v.destination,
    _v.sandbox,
    _v.shadow,
    _v.status,
    _v.generation,
    _v.attempts,
    _v.max_checks,
    _v.code_length,
    _v.expires_at,
    _v.resend_available_at,
    _v.policy_version,
    _v.arm,
    _v.created_at,
    _a.locale,
)
TO_RESEND = Prepared(
    select(*RESENDING)
    .join_from(verifications, accounts, _a.id == _v.account_id)
    .where(_v.id == bindparam("vid"))
    .with_for_update(of=verifications),
    RESENDING,
)
#: A resend's new secret and terms; the old secret stops working with it.
RESEND = Prepared(
    update(verifications)
    .where(_v.id == bindparam("vid"))
    .values(
        status="pending",
        generation=bindparam("generation"),
        secret_hash=bindparam("secret_hash"),
        resends=_v.resends + 1,
        expires_at=bindparam("expires_at"),
        resend_available_at=bindparam("resend_available_at"),
        delivery=bindparam("delivery"),
    )
    .returning(*SHOWN),
    SHOWN,
)
#: The verification a link's token belongs to, whatever its state.
#: Whether a verification is the sandbox's (which limits its checks count against).
SANDBOX = select(_v.sandbox).where(_v.id == bindparam("vid"))
BY_SECRET = Prepared(select(_v.id).where(_v.secret_hash == bindparam("digest")), (_v.id,))
_STATUS = (_v.status, _v.expires_at, _v.channel, _v.policy_version, _v.arm, _v.created_at)
STATUS_OF = Prepared(select(*_STATUS).where(_v.id == bindparam("vid")), _STATUS)
_COHORT = (_v.policy_version, _v.arm, _v.created_at)
#: A pending link's first showing.
VIEWED = Prepared(
    update(verifications)
    .where(
        _v.secret_hash == bindparam("digest"),
        _v.status == "pending",
        _v.viewed_at.is_(None),
        _v.shadow.is_(False),
    )
    .values(viewed_at=bindparam("now"))
    .returning(*_COHORT),
    _COHORT,
)
