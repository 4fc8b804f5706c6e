"""The Twilio-compatible surface over plain HTTP: the wire format, the flows, the codes.

The official SDK drives the same surface in ``tests/test_twilio_sdk.py``; here each
rule is pinned on its own, on SQLite and PostgreSQL: what a start, a restart, a check,
a cancel and an approval answer, and which Twilio error each refusal gets.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from support.api import runtime, sandbox_messages
from support.rollup import live_and_rebuilt
from support.verify import check, create_service, start, twilio_error, verify_key
from verifyd.models import Verification, table_of
from verifyd.verify_models import STATS_VERSION

PHONE, E164 = "+1 202 555 0142", "+12025550142"
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
#: Twilio's verification resource and its check's answer, field for field.
VERIFICATION_FIELDS = {
    "sid", "service_sid", "account_sid", "to", "channel", "status", "valid", "lookup", "amount",
    "payee", "send_code_attempts", "date_created", "date_updated", "sna", "url",
}  # fmt: skip
CHECK_FIELDS = {
    "sid", "service_sid", "account_sid", "to", "channel", "status", "valid", "amount", "payee",
    "sna_attempts_error_codes", "date_created", "date_updated",
}  # fmt: skip


def _wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def _setup(client: TestClient, **service: Any) -> tuple[dict[str, str], str]:
    auth = verify_key(client)
    return auth, create_service(client, auth, **service)["sid"]


def test_a_verification_from_start_to_approval(client: TestClient) -> None:
    auth, va = _setup(client, FriendlyName="Acme Shop", CodeLength="6")
    r = start(client, auth, va, PHONE)
    assert r.status_code == 201, r.text
    v = r.json()
    assert set(v) == VERIFICATION_FIELDS
    assert re.fullmatch(r"VE[0-9a-f]{32}", v["sid"]) and v["service_sid"] == va
    assert re.fullmatch(r"AC[0-9a-f]{32}", v["account_sid"])
    assert (v["to"], v["channel"], v["status"], v["valid"]) == (E164, "sms", "pending", False)
    assert DATE.match(v["date_created"]) and DATE.match(v["date_updated"])
    assert v["url"] == f"http://testserver/v2/Services/{va}/Verifications/{v['sid']}"
    [attempt] = v["send_code_attempts"]
    assert attempt["channel"] == "SMS" and re.fullmatch(r"VL[0-9a-f]{32}", attempt["attempt_sid"])
    [message] = sandbox_messages(client, E164)
    code = message["code"]
    assert len(code) == 6 and "Acme Shop" in message["body"]

    r = check(client, auth, va, To=PHONE, Code=_wrong(code))
    assert r.status_code == 200, r.text
    assert set(r.json()) == CHECK_FIELDS
    assert (r.json()["status"], r.json()["valid"], r.json()["sid"]) == ("pending", False, v["sid"])
    r = check(client, auth, va, VerificationSid=v["sid"], Code=code)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["valid"]) == ("approved", True)

    # Approved is done with: Twilio's soft delete answers 404 to every later call.
    twilio_error(
        client.get(f"/v2/Services/{va}/Verifications/{v['sid']}", headers=auth), 404, 20404
    )
    twilio_error(check(client, auth, va, To=PHONE, Code=code), 404, 20404)


def test_starting_again_resends_the_same_code_five_times_at_most(client: TestClient) -> None:
    auth, va = _setup(client)
    sids = set()
    for n in range(1, 6):
        r = start(client, auth, va, PHONE)
        assert r.status_code == 201, r.text
        sids.add(r.json()["sid"])
        assert len(r.json()["send_code_attempts"]) == n
    assert len(sids) == 1
    codes = [m["code"] for m in sandbox_messages(client, E164)]
    assert len(codes) == 5 and len(set(codes)) == 1
    twilio_error(start(client, auth, va, PHONE), 429, 60203)
    # The code still works: a refused restart changed nothing.
    r = check(client, auth, va, To=PHONE, Code=codes[0])
    assert r.json()["status"] == "approved"
    # A new start after the approval is a new verification.
    r = start(client, auth, va, PHONE)
    assert r.status_code == 201 and r.json()["sid"] not in sids


def test_five_wrong_checks_then_60202(client: TestClient) -> None:
    auth, va = _setup(client)
    sid = start(client, auth, va, PHONE).json()["sid"]
    code = sandbox_messages(client, E164)[0]["code"]
    for _ in range(5):
        r = check(client, auth, va, VerificationSid=sid, Code=_wrong(code))
        assert (r.status_code, r.json()["status"], r.json()["valid"]) == (200, "pending", False)
    twilio_error(check(client, auth, va, VerificationSid=sid, Code=code), 429, 60202)
    twilio_error(client.get(f"/v2/Services/{va}/Verifications/{sid}", headers=auth), 404, 20404)
    with runtime(client).db.read() as conn:
        v = table_of(Verification).c
        row = conn.execute(select(v.status, v.attempts).where(v.id == sid)).one()
    assert (row.status, row.attempts) == ("locked", 5)


def test_cancel_and_approve_through_the_api(client: TestClient) -> None:
    auth, va = _setup(client)
    first = start(client, auth, va, PHONE).json()["sid"]
    code = sandbox_messages(client, E164)[0]["code"]
    path = f"/v2/Services/{va}/Verifications/{first}"
    fetched = client.get(path, headers=auth)
    assert fetched.status_code == 200 and fetched.json()["status"] == "pending"
    twilio_error(client.post(path, data={"Status": "done"}, headers=auth), 400, 60200)
    r = client.post(path, data={"Status": "canceled"}, headers=auth)
    assert (r.status_code, r.json()["status"], r.json()["valid"]) == (200, "canceled", False)
    twilio_error(check(client, auth, va, VerificationSid=first, Code=code), 404, 20404)
    twilio_error(client.post(path, data={"Status": "approved"}, headers=auth), 404, 20404)

    second = start(client, auth, va, PHONE).json()["sid"]
    assert second != first  # the canceled one is not restarted
    r = client.post(
        f"/v2/Services/{va}/Verifications/{second}", data={"Status": "approved"}, headers=auth
    )
    assert (r.status_code, r.json()["status"], r.json()["valid"]) == (200, "approved", True)


def test_parameters_are_read_strictly(client: TestClient) -> None:
    auth, va = _setup(client)
    cases = [
        ({"To": PHONE}, "Channel"),
        ({"Channel": "sms"}, "To"),
        ({"To": PHONE, "Channel": "fax"}, "Channel"),
        ({"To": PHONE, "Channel": "sms", "CustomCode": "1234"}, "CustomCode"),
        ({"To": PHONE, "Channel": "sms", "Colour": "red"}, "Colour"),
        ({"To": PHONE, "Channel": "sms", "RiskCheck": "disable"}, "RiskCheck"),
        ({"To": PHONE, "Channel": "sms", "DeviceIp": "not-an-ip"}, "DeviceIp"),
        ({"To": PHONE, "Channel": "sms", "Tags": "[1]"}, "Tags"),
        ({"To": "12", "Channel": "sms"}, "To"),
        ({"To": "someone@example.test", "Channel": "sms"}, "To"),
    ]
    for form, named in cases:
        r = client.post(f"/v2/Services/{va}/Verifications", data=form, headers=auth)
        body = twilio_error(r, 400, 60200)
        assert body["message"].startswith(f"Invalid parameter: {named}"), (form, body)
    for channel in ("call", "whatsapp", "sna", "auto"):
        twilio_error(start(client, auth, va, PHONE, channel), 400, 60223)
    twilio_error(check(client, auth, va, Code="1234"), 400, 60221)
    twilio_error(check(client, auth, va, To=PHONE, Code="12"), 400, 60200)
    twilio_error(check(client, auth, va, To=PHONE, Code="1234", Amount="5"), 400, 60200)
    for form in ({"FriendlyName": "x", "CodeLength": "3"}, {"FriendlyName": "x" * 33},
                 {"FriendlyName": "x", "LookupEnabled": "yes"}, {}):  # fmt: skip
        twilio_error(client.post("/v2/Services", data=form, headers=auth), 400, 60200)
    # Nothing was started by any of it.
    assert sandbox_messages(client, E164) == []


def test_destinations_are_refused_with_twilio_codes(make_settings: Any, make_client: Any) -> None:
    client = make_client(make_settings(allowed_countries=["GB"]))
    auth, va = _setup(client)
    twilio_error(start(client, auth, va, "+14155552671"), 403, 60605)  # a real US number
    body = twilio_error(start(client, auth, va, "+449098790000"), 400, 60200)  # premium rate
    assert body["message"].startswith("Invalid parameter: To")
    assert "premium" in body["message"]


def test_services_are_created_updated_paged_and_deleted(client: TestClient) -> None:
    auth = verify_key(client)
    created = [
        create_service(
            client, auth, FriendlyName=f"svc {i}", LookupEnabled="true", **{"Totp.TimeStep": "45"}
        )  # fmt: skip
        for i in range(3)
    ]
    first = created[0]
    assert (first["code_length"], first["lookup_enabled"], first["totp"]["time_step"]) == (
        6,
        True,
        45,
    )
    assert first["url"] == f"http://testserver/v2/Services/{first['sid']}"
    r = client.post(f"/v2/Services/{first['sid']}", data={"FriendlyName": "renamed",
                    "CodeLength": "8"}, headers=auth)  # fmt: skip
    assert r.status_code == 200, r.text
    assert (r.json()["friendly_name"], r.json()["code_length"]) == ("renamed", 8)
    assert r.json()["lookup_enabled"] is True  # untouched fields keep their values

    seen: list[str] = []
    r = client.get("/v2/Services", params={"PageSize": 2}, headers=auth)
    while True:
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["meta"]["key"] == "services" and len(page["services"]) <= 2
        seen += [s["sid"] for s in page["services"]]
        following = page["meta"]["next_page_url"]
        if following is None:
            break
        assert following.startswith("http://testserver/v2/Services?")
        r = client.get(following, headers=auth)
    assert sorted(seen) == sorted(s["sid"] for s in created)

    r = client.delete(f"/v2/Services/{first['sid']}", headers=auth)
    assert r.status_code == 204
    twilio_error(client.get(f"/v2/Services/{first['sid']}", headers=auth), 404, 20404)
    twilio_error(start(client, auth, first["sid"], PHONE), 404, 20404)


def test_the_stats_rows_agree_with_the_verifications(client: TestClient) -> None:
    auth, va = _setup(client)
    approved = start(client, auth, va, PHONE).json()["sid"]
    start(client, auth, va, PHONE)  # a re-send
    code = sandbox_messages(client, E164)[0]["code"]
    check(client, auth, va, VerificationSid=approved, Code=_wrong(code))
    check(client, auth, va, VerificationSid=approved, Code=code)
    for phone in ("+12025550143", "+12025550144"):
        start(client, auth, va, phone)
    sid = start(client, auth, va, "+12025550145").json()["sid"]
    client.post(f"/v2/Services/{va}/Verifications/{sid}", data={"Status": "approved"}, headers=auth)
    sid = start(client, auth, va, "+12025550146").json()["sid"]
    client.post(f"/v2/Services/{va}/Verifications/{sid}", data={"Status": "canceled"}, headers=auth)
    rt = runtime(client)
    with rt.db.read() as conn:
        live, rebuilt = live_and_rebuilt(conn)
    assert live == rebuilt
    key = "VA" + va[-14:]
    mine = {name: n for (v, arm, name), n in live.items() if (v, arm) == (STATS_VERSION, key)}
    assert mine["verifications.sms"] == 5 and mine["resends.sms"] == 1
    assert mine["approved.sms"] == 2 and mine["checks.sms.approved"] == 1
    assert mine["checks.sms.incorrect"] == 1 and mine["canceled.sms"] == 1
    assert not any(name.startswith("signups") for name in mine)


def test_locale_and_custom_friendly_name_shape_the_message(client: TestClient) -> None:
    auth, va = _setup(client, FriendlyName="Acme Shop")
    r = start(client, auth, va, PHONE, Locale="ar", CustomFriendlyName="Acme Souq")
    assert r.status_code == 201, r.text
    [message] = sandbox_messages(client, E164)
    assert "رمز التحقق" in message["body"] and "Acme Souq" in message["body"]
    assert "Acme Shop" not in message["body"]
    # An unknown locale falls back to English rather than failing the start.
    r = start(client, auth, va, "+12025550143", Locale="xx-YY")
    assert r.status_code == 201, r.text
    body = sandbox_messages(client, "+12025550143")[0]["body"]
    assert body.startswith("Your verification code is") and "Acme Shop" in body
