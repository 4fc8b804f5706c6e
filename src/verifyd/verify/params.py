"""The form a ``/v2`` request sends, read strictly: every parameter known, typed, checked.

Twilio's API takes ``application/x-www-form-urlencoded`` bodies with PascalCase keys
(``FriendlyName``, dotted ones like ``Totp.TimeStep``); booleans are ``true``/``false``.
A parameter verifyd does not know, or knows and cannot honour, is refused with 60200
naming it: never dropped, never misread.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from urllib.parse import parse_qsl

from verifyd.verify.errors import TwilioError, invalid

#: At most this many parameters in one form (every documented one fits many times over).
MAX_PARAMS = 64


class Form:
    """One request's parameters.

    Args:
        pairs: The decoded ``key=value`` pairs, in order.
        allowed: The parameters this endpoint reads; any other is refused.
        unsupported: Documented parameters verifyd refuses, each with why.
    """

    def __init__(
        self,
        pairs: Iterable[tuple[str, str]],
        allowed: Iterable[str],
        unsupported: dict[str, str] | None = None,
    ) -> None:
        self._values: dict[str, str] = {}
        known = set(allowed)
        for key, value in pairs:
            if key in (unsupported or {}):
                raise invalid(key, (unsupported or {})[key])
            if key not in known:
                raise invalid(key, "not a parameter of this resource")
            if key in self._values:
                raise invalid(key, "given more than once")
            self._values[key] = value
            if len(self._values) > MAX_PARAMS:
                raise TwilioError(60200, 400, "Invalid parameter: too many parameters")

    @classmethod
    def parse(
        cls, body: bytes, allowed: Iterable[str], unsupported: dict[str, str] | None = None
    ) -> Form:
        """Read a form-encoded body.

        Raises:
            TwilioError: 60200, the body is not UTF-8 form data or names a bad parameter.
        """
        try:
            text = body.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PARAMS)
        except (UnicodeDecodeError, ValueError):
            raise TwilioError(
                60200, 400, "Invalid parameter: the body must be UTF-8 form data"
            ) from None
        return cls(pairs, allowed, unsupported)

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def keys(self) -> list[str]:
        return list(self._values)

    def text(self, key: str, *, required: bool = False, max_length: int = 320) -> str | None:
        """A string parameter (``None`` when absent and not required).

        Raises:
            TwilioError: 60200, missing, empty, too long or holding a control character.
        """
        value = self._values.get(key)
        if value is None:
            if required:
                raise invalid(key, "required")
            return None
        if not value.strip() or len(value) > max_length:
            raise invalid(key, f"1 to {max_length} characters")
        if any(ord(c) < 32 for c in value):
            raise invalid(key, "control characters are not allowed")
        return value

    def integer(self, key: str, low: int, high: int) -> int | None:
        """An integer parameter within ``[low, high]``.

        Raises:
            TwilioError: 60200, not an integer or out of range.
        """
        value = self._values.get(key)
        if value is None:
            return None
        if not value.isascii() or not value.lstrip("-").isdigit() or len(value) > 6:
            raise invalid(key, f"an integer from {low} to {high}")
        number = int(value)
        if not low <= number <= high:
            raise invalid(key, f"an integer from {low} to {high}")
        return number

    def boolean(self, key: str) -> bool | None:
        """A boolean parameter: ``true`` or ``false``.

        Raises:
            TwilioError: 60200, anything else.
        """
        value = self._values.get(key)
        if value is None:
            return None
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise invalid(key, "true or false")
        return lowered == "true"

    def choice(self, key: str, choices: Iterable[str], *, required: bool = False) -> str | None:
        """One of ``choices``.

        Raises:
            TwilioError: 60200, missing (when required) or not one of them.
        """
        value = self.text(key, required=required, max_length=64)
        options = list(choices)
        if value is not None and value not in options:
            raise invalid(key, "one of " + ", ".join(options))
        return value

    def address(self, key: str) -> str | None:
        """An IPv4 or IPv6 address, normalised.

        Raises:
            TwilioError: 60200, not an address.
        """
        raw = self.text(key, max_length=64)
        if raw is None:
            return None
        try:
            return str(ipaddress.ip_address(raw))
        except ValueError:
            raise invalid(key, "an IPv4 or IPv6 address") from None

    def tags(self, key: str) -> None:
        """``Tags``: a JSON object of at most 10 short string pairs (checked, then not kept).

        Raises:
            TwilioError: 60200 on ``Tags``.
        """
        raw = self.text(key, max_length=4096)
        if raw is None:
            return
        try:
            tags = json.loads(raw)
        except ValueError:
            raise invalid(key, "a JSON object") from None
        if not isinstance(tags, dict) or len(tags) > 10:
            raise invalid(key, "a JSON object of at most 10 tags")
        for k, v in tags.items():
            if not isinstance(v, str) or not 0 < len(k) <= 128 or len(v) > 128:
                raise invalid(key, "keys and values are strings of at most 128 characters")
