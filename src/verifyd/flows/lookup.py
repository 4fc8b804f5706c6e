"""Reads of one account or one verification, as the API shows them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from verifyd import statements as sql
from verifyd import views
from verifyd.codes import hash_token, well_formed
from verifyd.db import Database
from verifyd.errors import NotFound
from verifyd.flows.confirm import MAX_TOKEN_LENGTH
from verifyd.verify_models import SERVICE_ACCOUNT


class Lookup:
    """Reads accounts and verifications (destinations masked).

    Args:
        db: The database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def account(self, account_id: str) -> dict[str, Any]:
        """The account and which identities are verified.

        Raises:
            NotFound: ``account_not_found``.
        """
        row = None
        if well_formed(account_id):
            with self._db.read() as conn:
                accounts = sql.accounts
                row = conn.execute(
                    select(accounts).where(
                        accounts.c.id == account_id, accounts.c.status != SERVICE_ACCOUNT
                    )
                ).first()
        if row is None:
            raise NotFound("account_not_found", "no account with this id")
        view = views.account(row)
        view["verified"] = {
            "phone": row.phone_verified_at is not None,
            "email": row.email_verified_at is not None,
        }
        return view

    def verification(self, verification_id: str) -> dict[str, Any]:
        """One verification.

        Raises:
            NotFound: ``verification_not_found``.
        """
        row = None
        if well_formed(verification_id):
            with self._db.read() as conn:
                table = sql.verifications
                row = conn.execute(select(table).where(table.c.id == verification_id)).first()
        if row is None:
            raise NotFound("verification_not_found", "no verification with this id")
        return views.verification(row)

    def link_locale(self, token: str) -> str | None:
        """The locale of the signup an email link's token belongs to, for its pages.

        ``None`` for a token no verification holds (the page then follows the reader's
        ``Accept-Language``). The token is looked up by its hash, as a confirmation does.
        """
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        v, a = sql.verifications.c, sql.accounts.c
        with self._db.read() as conn:
            locale: str | None = conn.execute(
                select(a.locale)
                .join_from(sql.verifications, sql.accounts, a.id == v.account_id)
                .where(v.secret_hash == hash_token(token))
                .limit(1)
            ).scalar()
        return locale
