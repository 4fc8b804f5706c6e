"""The tests serve apps under test the way ``verifyd demo`` serves its own: one class."""

from verifyd.liveserver import LiveServer, bind_loopback

__all__ = ["LiveServer", "bind_loopback"]
