"""``redirect_url``: normalised (dot segments, percent-encoding) before it is matched.

The attack of issue 10: ``https://good.example/welcome/../../evil`` and
``/welcome/%2e%2e/%2e%2e/evil`` passed a ``/welcome`` prefix, and the confirmation's
303 sent the browser to ``/evil``.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from support.liveserver import LiveServer
from verifyd import redirects
from verifyd.app import create_app
from verifyd.settings import Settings

ALLOW = ["https://good.example/welcome", "https://whole.example"]


@pytest.mark.parametrize(
    "url",
    [
        "https://good.example/welcome/../../evil",
        "https://good.example/welcome/%2e%2e/%2e%2e/evil",
        "https://good.example/welcome/%2E%2E/evil",
        "https://good.example/welcome/.%2e/evil",
        "https://good.example/welcome/..",
        "https://good.example/welcome/../welcomeback",
        "https://good.example/welcome%2f..%2f..%2fevil",
        "https://good.example/welcome/%2F%2Fevil.example",
        "https://good.example/welcome/%5c%5cevil.example",
        "https://good.example/welcome/%252e%252e/evil",
        "https://good.example/welcome\\..\\evil",
        "https://good.example\\@evil.example/welcome",
        "https://user@good.example/welcome",
        "https://good.example@evil.example/welcome",
        "https://good.example%2f@evil.example/welcome",
        "https://good.example:99999/welcome",
        "https://good.example/welcome/%zz",
        "https://good.example/welcome/\u00e9",
        "https://good.example/welcome/a b",
        "https://good.example/welcome/\t",
        "javascript://good.example/welcome",
        "//good.example/welcome",
        "https:///welcome",
        "https://good.example/welcomeback",
        "https://evil.example/welcome",
    ],
)
def test_escapes_and_oddities_are_refused(url: str) -> None:
    assert redirects.checked(url, ALLOW) is None


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://good.example/welcome", "https://good.example/welcome"),
        ("HTTPS://Good.Example/welcome/next", "https://good.example/welcome/next"),
        ("https://good.example/welcome/a/../b", "https://good.example/welcome/b"),
        ("https://good.example/welcome/./b/.", "https://good.example/welcome/b/"),
        ("https://good.example/%77elcome/%7Euser", "https://good.example/welcome/~user"),
        ("https://good.example/welcome/caf%c3%a9", "https://good.example/welcome/caf%C3%A9"),
        (
            "https://good.example/welcome?next=%2Fhome&x=..#frag",
            "https://good.example/welcome?next=%2Fhome&x=..#frag",
        ),
        ("https://whole.example/../anything", "https://whole.example/anything"),
    ],
)
def test_allowed_urls_come_back_normalised(url: str, normalised: str) -> None:
    assert redirects.checked(url, ALLOW) == normalised


def test_remove_dot_segments_follows_rfc_3986() -> None:
    # The examples of RFC 3986 section 5.2.4.
    assert redirects.remove_dot_segments("/a/b/c/./../../g") == "/a/g"
    assert redirects.remove_dot_segments("mid/content=5/../6") == "mid/6"
    assert redirects.remove_dot_segments("/../../..") == "/"
    assert redirects.remove_dot_segments("/a/..") == "/"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_whole_flow_refuses_the_escape_and_redirects_to_the_normalised_url(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        policy_mode="email", redirect_allowlist=["https://good.example/welcome"]
    )
    with LiveServer(create_app(settings)) as server, httpx.Client(base_url=server.base_url) as http:
        for evil in (
            "https://good.example/welcome/../../evil",
            "https://good.example/welcome/%2e%2e/%2e%2e/evil",
        ):
            r = http.post("/v1/accounts", json={"email": "e@example.test", "redirect_url": evil})
            assert r.status_code == 422, r.text
            assert r.json()["code"] == "redirect_not_allowed"
        r = http.post(
            "/v1/accounts",
            json={
                "email": "ok@example.test",
                "redirect_url": "https://good.example/welcome/x/%2e%2e/done",
            },
        )
        assert r.status_code == 201, r.text
        [message] = http.get("/v1/sandbox/messages", params={"to": "ok@example.test"}).json()[
            "messages"
        ]
        [token] = parse_qs(urlsplit(message["link"]).query)["token"]
        r = http.post("/v1/email/verify", data={"token": token})
        assert r.status_code == 303
        assert r.headers["location"] == "https://good.example/welcome/done?status=verified"
