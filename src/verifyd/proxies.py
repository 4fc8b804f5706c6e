"""Whose ``X-Forwarded-For`` to believe: ``VERIFYD_TRUSTED_PROXIES`` as addresses or networks.

Per-address limits, velocity signals and the scope of an ``Idempotency-Key`` key on the
client's address. Behind a load balancer the peer is the balancer; its
``X-Forwarded-For`` names the client, but only a trusted peer's may be believed (anyone
can send the header). In Kubernetes or compose the balancer's address changes with
each restart, so an entry may be a network (``10.0.0.0/8``) as well as an address.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network


def parse(entries: Iterable[str]) -> tuple[IPv4Network | IPv6Network, ...]:
    """Each entry as a network (an address is a network of one).

    Raises:
        ValueError: an entry is neither, naming it.
    """
    networks = []
    for entry in entries:
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(networks)


class TrustedProxies:
    """The peers whose ``X-Forwarded-For`` names the client.

    Args:
        entries: Addresses and networks (``VERIFYD_TRUSTED_PROXIES``).
    """

    def __init__(self, entries: Iterable[str]) -> None:
        self._networks = parse(entries)

    def trusts(self, address: str) -> bool:
        """Whether ``address`` is a trusted proxy (never for a name that is no address)."""
        if not self._networks:
            return False
        try:
            ip = ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def client(self, peer: str, forwarded: str) -> str:
        """The client's address: the last hop no trusted proxy added, else the peer.

        Args:
            peer: The connection's remote address.
            forwarded: The ``X-Forwarded-For`` header ("" when absent).
        """
        if not self.trusts(peer):
            return peer
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop[:64]
        return peer
