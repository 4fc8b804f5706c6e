"""Twilio's ``lookup`` object for a number, from phonenumbers' offline metadata."""

from __future__ import annotations

from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers import carrier as carriers

from verifyd.destinations import Destination

_TYPES = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "landline",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "mobile",
    PhoneNumberType.VOIP: "voip",
}


def carrier(dest: Destination) -> dict[str, Any]:
    """``{"carrier": {...}}`` for a phone (``{}`` for an email or a sandbox number).

    The carrier's name is the number range's original operator (a ported number keeps
    it); verifyd queries no network, so the mobile country and network codes are null.
    """
    if dest.kind != "phone" or dest.sandbox:
        return {}
    number = phonenumbers.parse(dest.value)
    return {
        "carrier": {
            "mobile_country_code": None,
            "mobile_network_code": None,
            "name": carriers.name_for_number(number, "en") or None,
            "type": _TYPES.get(phonenumbers.number_type(number)),
            "error_code": None,
        }
    }
