"""Verification channels (entry-point group ``verifyd.channels``)."""
