"""``verifyd demo``: a synthetic population driven through a private server's public API."""

from __future__ import annotations


class DemoFailure(Exception):
    """The service failed (a 5xx, a transport error, a server that did not start): the run stops."""
