"""The official ``twilio`` SDK, unchanged, as the client of a live verifyd on loopback.

An application points its ``Client`` at verifyd by changing only the client's
construction: the credential ``verifyd admin-key create --scope verify`` prints,
``client.edge = client.region = None`` and ``client.verify.base_url``. Everything on
``/v2`` below goes through the SDK (sync and async); only the codes are read from
the sandbox inbox over plain HTTP. One server per backend serves the module (its app's
``public_base_url`` is its own address: the SDK follows ``next_page_url`` as given);
each test takes its own services and sandbox destinations.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import MetaData, select
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from support.twilio_sdk import (
    SID,
    Live,
    create_key,
    credential,
    database,
    pointed,
    sandbox_phone,
    serve,
)
from verifyd.db import Database
from verifyd.models import AdminKey, table_of


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """One verifyd per backend for the module, and a credential from the real CLI."""
    tmp = tmp_path_factory.mktemp("sdk")
    databases = database(request, request.param, tmp)
    database_url = next(databases)
    printed, account_sid, token = credential(database_url, tmp, "app")
    server = serve(database_url)
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as inbox:
            yield Live(server.base_url, database_url, printed, account_sid, token, inbox)
    finally:
        server.stop()
        next(databases, None)


@pytest.fixture
def connect(live: Live) -> Iterator[Callable[..., Client]]:
    """``Client(account_sid, auth_token)`` pointed at verifyd; sessions closed after."""
    clients: list[Client] = []

    def make(account_sid: str | None = None, auth_token: str | None = None) -> Client:
        client = Client(account_sid or live.account_sid, auth_token or live.auth_token)
        clients.append(client)
        return pointed(client, live.url)

    yield make
    for client in clients:
        client.http_client.session.close()


@pytest.fixture
def client(connect: Callable[..., Client]) -> Client:
    return connect()


def raised(call: Callable[[], object]) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as info:
        call()
    return info.value


# ------------------------------------------------------------------ the credential


def test_the_cli_prints_two_lines_and_stores_no_token(live: Live) -> None:
    assert live.printed == (
        f"TWILIO_ACCOUNT_SID={live.account_sid}\nTWILIO_AUTH_TOKEN={live.auth_token}\n"
    )
    assert SID["AC"].match(live.account_sid)
    db = Database(live.database_url)
    try:
        with db.read() as conn:
            (key,) = conn.execute(
                select(table_of(AdminKey)).where(
                    table_of(AdminKey).c.account_sid == live.account_sid
                )
            ).all()
            assert key.scope == "verify" and key.secret_hash != live.auth_token
            tables = MetaData()
            tables.reflect(conn)
            for table in tables.sorted_tables:  # the token in clear nowhere, in any table
                for row in conn.execute(select(table)).all():
                    assert live.auth_token not in repr(tuple(row)), table.name
    finally:
        db.dispose()


# ------------------------------------------------------------------ services


def test_a_service_is_created_with_a_twilio_sid_and_parsed_dates(client: Client) -> None:
    service = client.verify.v2.services.create(friendly_name="Acme", code_length=6)
    assert SID["VA"].match(service.sid)
    assert service.friendly_name == "Acme" and service.code_length == 6
    assert isinstance(service.date_created, datetime)
    assert isinstance(service.date_updated, datetime)
    assert client.verify.v2.services(service.sid).fetch().sid == service.sid


def test_services_are_listed_across_pages(
    live: Live, connect: Callable[..., Client], tmp_path: Path
) -> None:
    # A credential of its own, so the listing holds exactly this test's three services.
    _, account_sid, token = credential(live.database_url, tmp_path, "paging")
    client = connect(account_sid, token)
    made = {client.verify.v2.services.create(friendly_name=f"Shop {i}").sid for i in range(3)}

    listed = [s.sid for s in client.verify.v2.services.list(page_size=2)]
    assert sorted(listed) == sorted(made), "every service once, across two pages"

    first = client.verify.v2.services.page(page_size=2)
    assert first.next_page_url is not None
    assert first.next_page_url.startswith(f"{live.url}/v2/Services?")
    second = first.next_page()
    assert second is not None and second.next_page_url is None
    paged = [s.sid for s in first] + [s.sid for s in second]
    assert len(paged) == 3 and set(paged) == made
    assert [s.sid for s in client.verify.v2.services.list(page_size=1)] == paged


# ------------------------------------------------------------------ SMS verifications


def test_an_sms_code_is_approved_once(live: Live, client: Client) -> None:
    service = client.verify.v2.services.create(friendly_name="Acme Shop", code_length=6)
    to = sandbox_phone()
    started = client.verify.v2.services(service.sid).verifications.create(to=to, channel="sms")
    assert started.status == "pending" and started.valid is False
    assert SID["VE"].match(started.sid) and started.to == to and started.channel == "sms"
    assert started.service_sid == service.sid and started.account_sid == live.account_sid
    assert len(started.send_code_attempts) == 1

    (message,) = live.messages(to)
    code = message["code"]
    assert re.fullmatch(r"\d{6}", code), "the service's CodeLength"
    assert "Acme Shop" in message["body"] and code in message["body"]

    checks = client.verify.v2.services(service.sid).verification_checks
    wrong = checks.create(to=to, code=f"{(int(code) + 1) % 10**6:06d}")
    assert (wrong.status, wrong.valid) == ("pending", False)
    assert wrong.sid == started.sid
    right = checks.create(verification_sid=started.sid, code=code)
    assert (right.status, right.valid) == ("approved", True)
    assert isinstance(right.date_updated, datetime)

    gone = raised(client.verify.v2.services(service.sid).verifications(started.sid).fetch)
    assert (gone.status, gone.code) == (404, 20404)


def test_the_sixth_wrong_check_is_max_attempts(live: Live, client: Client) -> None:
    service = client.verify.v2.services.create(friendly_name="Acme")
    to = sandbox_phone()
    client.verify.v2.services(service.sid).verifications.create(to=to, channel="sms")
    wrong = f"{(int(live.code(to)) + 1) % 10**6:06d}"
    checks = client.verify.v2.services(service.sid).verification_checks
    for _ in range(5):
        check = checks.create(to=to, code=wrong)
        assert (check.status, check.valid) == ("pending", False)
    locked = raised(lambda: checks.create(to=to, code=wrong))
    assert (locked.status, locked.code) == (429, 60202)


def test_starting_again_resends_the_same_code(live: Live, client: Client) -> None:
    service = client.verify.v2.services.create(friendly_name="Acme")
    to = sandbox_phone()
    verifications = client.verify.v2.services(service.sid).verifications
    first = verifications.create(to=to, channel="sms")
    again = verifications.create(to=to, channel="sms")
    assert again.sid == first.sid and again.status == "pending"
    assert len(again.send_code_attempts) == 2
    assert [a["channel"] for a in again.send_code_attempts] == ["SMS", "SMS"]
    sent = live.messages(to)
    assert len(sent) == 2 and sent[0]["code"] == sent[1]["code"]


def test_a_canceled_verification_is_gone(live: Live, client: Client) -> None:
    service = client.verify.v2.services(client.verify.v2.services.create(friendly_name="A").sid)
    to = sandbox_phone()
    started = service.verifications.create(to=to, channel="sms")
    canceled = service.verifications(started.sid).update(status="canceled")
    assert canceled.status == "canceled" and canceled.valid is False
    gone = raised(lambda: service.verification_checks.create(to=to, code=live.code(to)))
    assert (gone.status, gone.code) == (404, 20404)


def test_a_pending_verification_is_fetched_with_dates(live: Live, client: Client) -> None:
    service = client.verify.v2.services.create(friendly_name="Acme")
    started = client.verify.v2.services(service.sid).verifications.create(
        to=sandbox_phone(), channel="sms"
    )
    fetched = client.verify.v2.services(service.sid).verifications(started.sid).fetch()
    assert fetched.sid == started.sid and fetched.status == "pending"
    assert isinstance(fetched.date_created, datetime)
    assert isinstance(fetched.date_updated, datetime)
    assert fetched.date_created.tzinfo is not None
    assert fetched.url == f"{live.url}/v2/Services/{service.sid}/Verifications/{started.sid}"


# ------------------------------------------------------------------ email


def test_an_email_code_is_approved(live: Live, client: Client) -> None:
    service = client.verify.v2.services.create(friendly_name="Acme Mail")
    to = f"user-{uuid.uuid4().hex[:8]}@example.test"
    started = client.verify.v2.services(service.sid).verifications.create(to=to, channel="email")
    assert started.status == "pending" and started.channel == "email"
    (message,) = live.messages(to)
    assert message["kind"] == "code" and message["channel"] == "email_code"
    check = client.verify.v2.services(service.sid).verification_checks.create(
        to=to, code=message["code"]
    )
    assert (check.status, check.valid) == ("approved", True)


# ------------------------------------------------------------------ credentials, errors


def test_bad_credentials_and_unknown_sids_get_twilio_errors(
    live: Live, connect: Callable[..., Client], tmp_path: Path
) -> None:
    # (A listing raises the SDK's plain TwilioException, "Unable to fetch page": create.)
    bad = raised(lambda: connect(auth_token="0" * 32).verify.v2.services.create(friendly_name="X"))
    assert (bad.status, bad.code) == (401, 20003)

    unknown = raised(connect().verify.v2.services("VA" + "0" * 32).fetch)
    assert (unknown.status, unknown.code) == (404, 20404)

    admin_key = create_key(live.database_url, tmp_path, "--name", "ops").stdout.strip()
    # As the auth token beside the account SID, or as the "account SID": told it is the
    # wrong kind of key (403), not that it is unknown.
    for as_sdk in (connect(live.account_sid, admin_key), connect(admin_key, "unused")):
        with pytest.raises(TwilioRestException) as refused:
            as_sdk.verify.v2.services.create(friendly_name="X")
        assert (refused.value.status, refused.value.code) == (403, 20003)


def test_edge_and_region_from_the_environment_must_be_cleared(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    client = Client(live.account_sid, live.auth_token)
    try:
        client.verify.base_url = live.url
        # Left set, they send every request to another host (no request is made: the
        # rewritten name would be looked up in DNS).
        assert (client.edge, client.region) == ("sydney", "au1")
        url = f"{live.url}/v2/Services"
        assert client.get_hostname(url) == url.replace("127.0.0.1", "127.sydney.au1.0.1")
        pointed(client, live.url)
        assert client.get_hostname(url) == url
        service = client.verify.v2.services.create(friendly_name="Edge")
        assert SID["VA"].match(service.sid)
    finally:
        client.http_client.session.close()


def test_with_the_surface_off_the_sdk_gets_404(live: Live) -> None:
    server = serve(live.database_url, twilio_compat=False)
    client = pointed(Client(live.account_sid, live.auth_token), server.base_url)
    try:
        # Not mounted, /v2 is any unknown path: verifyd's problem+json 404, which the SDK
        # reads as RFC 9457 (TwilioServiceException), not a Twilio error body.
        with pytest.raises(TwilioServiceException) as info:
            client.verify.v2.services.create(friendly_name="Off")
        assert info.value.status == 404
    finally:
        client.http_client.session.close()
        server.stop()


# ------------------------------------------------------------------ the async client


# The SDK hands aiohttp its credentials as ``auth=BasicAuth(…)``, which aiohttp 3.14
# deprecates (twilio 9.13's AsyncTwilioHttpClient): the SDK's to change, not verifyd's.
@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning")
def test_the_async_client_runs_the_same_flow(live: Live) -> None:
    async def flow() -> None:
        http = AsyncTwilioHttpClient()
        client = pointed(Client(live.account_sid, live.auth_token, http_client=http), live.url)
        try:
            v2 = client.verify.v2
            service = await v2.services.create_async(friendly_name="Async", code_length=6)
            assert SID["VA"].match(service.sid)
            to = sandbox_phone()
            started = await v2.services(service.sid).verifications.create_async(
                to=to, channel="sms"
            )
            assert (started.status, started.valid) == ("pending", False)
            fetched = await v2.services(service.sid).verifications(started.sid).fetch_async()
            assert isinstance(fetched.date_created, datetime)
            code = live.code(to)
            checks = v2.services(service.sid).verification_checks
            wrong = await checks.create_async(to=to, code=f"{(int(code) + 1) % 10**6:06d}")
            assert (wrong.status, wrong.valid) == ("pending", False)
            right = await checks.create_async(to=to, code=code)
            assert (right.status, right.valid) == ("approved", True)
            with pytest.raises(TwilioRestException) as info:
                await v2.services(service.sid).verifications(started.sid).fetch_async()
            assert (info.value.status, info.value.code) == (404, 20404)
            listed = [s.sid for s in await v2.services.list_async(page_size=1)]
            assert service.sid in listed and len(listed) == len(set(listed))
        finally:
            await http.close()

    asyncio.run(flow())
