"""Delivery providers (entry-point group ``verifyd.providers``)."""
