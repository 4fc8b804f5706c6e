"""The Twilio Verify-compatible surface (``/v2``): services, verifications, checks.

The flows here use verifyd's own channels, providers, limits, sandbox and outbox; they
raise :class:`~verifyd.verify.errors.TwilioError` with Twilio's codes. Nothing here
imports FastAPI: ``verifyd.api.twilio`` is the router.
"""
