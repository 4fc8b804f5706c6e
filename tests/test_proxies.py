"""``VERIFYD_TRUSTED_PROXIES``: addresses or networks whose ``X-Forwarded-For`` names the client."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from pydantic import ValidationError

from support.liveserver import LiveServer
from verifyd.app import create_app
from verifyd.proxies import TrustedProxies
from verifyd.settings import Settings


def test_addresses_and_networks_of_both_families_are_trusted() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "192.0.2.7", "fd00::/8"])
    assert proxies.trusts("10.42.3.9") and proxies.trusts("192.0.2.7")
    assert proxies.trusts("fd00::1")
    assert not proxies.trusts("192.0.2.8") and not proxies.trusts("11.0.0.1")
    assert not proxies.trusts("2001:db8::1")
    assert not proxies.trusts("testclient")  # a peer that is no address is never trusted
    assert not TrustedProxies([]).trusts("10.0.0.1")


def test_the_client_is_the_last_hop_no_trusted_proxy_added() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    # The client may forge hops of its own; only the ones our proxies appended count.
    assert proxies.client("10.1.1.1", "198.51.100.9, 203.0.113.5, 10.2.2.2") == "203.0.113.5"
    assert proxies.client("10.1.1.1", "") == "10.1.1.1"  # a proxy that names nobody
    assert proxies.client("10.1.1.1", "10.3.3.3") == "10.1.1.1"  # only proxies
    # From an untrusted peer the header is ignored, whatever it says.
    assert proxies.client("203.0.113.5", "10.9.9.9") == "203.0.113.5"


def test_an_entry_that_is_no_address_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match="'lb.internal' is not an IP address or network"):
        Settings(trusted_proxies="10.0.0.0/8,lb.internal")
    assert Settings(trusted_proxies="10.0.0.0/8, 127.0.0.1").trusted_proxies == [
        "10.0.0.0/8",
        "127.0.0.1",
    ]


@pytest.mark.parametrize(
    ("trusted", "separate"), [(["127.0.0.0/8"], True), (["10.0.0.0/8"], False)]
)
def test_per_address_limits_key_on_the_client_a_trusted_network_names(
    make_settings: Callable[..., Settings], trusted: list[str], separate: bool
) -> None:
    """Over a real socket from 127.0.0.1: trusted as a network, two clients get a limit each."""
    settings = make_settings(
        trusted_proxies=trusted, signups_per_ip_per_hour=1, sandbox_limit_multiplier=1
    )

    def signup(http: httpx.Client, client: str, n: int) -> int:
        body = {"phone": f"+1 202 555 01{n:02d}"}
        return http.post("/v1/accounts", json=body, headers={"X-Forwarded-For": client}).status_code

    with LiveServer(create_app(settings)) as server, httpx.Client(base_url=server.base_url) as http:
        first = signup(http, "203.0.113.1", 40)
        other = signup(http, "203.0.113.2", 41)
        again = signup(http, "203.0.113.1", 42)
    assert (first, again) == (201, 429)
    assert other == (201 if separate else 429)
