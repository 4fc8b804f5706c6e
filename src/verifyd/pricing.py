"""What messages cost: the operator's price list, and what a sent message is priced by.

``VERIFYD_PRICES`` (or the file ``VERIFYD_PRICES_FILE``) is JSON: a currency, and per
message kind either one price per message or prices per destination country (ISO
3166 code) with a ``default``; an SMS costs its price per segment times its segments::

    {"currency": "USD", "email": 0.0004, "sms": {"default": 0.0079, "GB": 0.0463}}

Sent messages are counted by kind, country and segments, and priced when the stats
are read: a corrected price list applies to everything already sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers

from verifyd import segments
from verifyd.settings import ConfigurationError, Settings

#: What development prices messages by when no price list is set.
DEVELOPMENT_PRICES = Path(__file__).with_name("prices.development.json")

#: The country of a destination that has none (an email, an unparsable number).
NO_COUNTRY = "-"


@dataclass(frozen=True)
class Prices:
    """A price list.

    Attributes:
        currency: What the prices are in (``USD``).
        flat: Per kind, one price per message (or segment).
        by_country: Per kind, prices per country; ``default`` for the rest.
    """

    currency: str
    flat: dict[str, float] = field(default_factory=dict)
    by_country: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Prices | None:
        """The configured price list; in development the example list when none is set.

        Returns:
            The prices, or ``None`` in production when none is set.

        Raises:
            ConfigurationError: the JSON or the file is not a price list.
        """
        source = "VERIFYD_PRICES"
        text = settings.prices
        if settings.prices_file is not None:
            source = f"VERIFYD_PRICES_FILE ({settings.prices_file})"
            try:
                text = settings.prices_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(f"{source}: {exc.strerror}") from exc
        if text is None and not settings.production:
            # Development shows costs from the start (the demo's cost per verified
            # account): an example list, not anyone's tariff. Production has none
            # until the operator sets one.
            source = f"the development example prices ({DEVELOPMENT_PRICES.name})"
            text = DEVELOPMENT_PRICES.read_text(encoding="utf-8")
        if text is None:
            return None
        try:
            return cls.parse(json.loads(text))
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"{source}: {exc}") from exc

    @classmethod
    def parse(cls, doc: object) -> Prices:
        """A price list from its JSON document.

        Raises:
            ValueError: not an object with a ``currency`` and numeric prices.
        """
        if not isinstance(doc, dict) or not isinstance(doc.get("currency"), str):
            raise ValueError('a price list is an object with a "currency"')
        flat: dict[str, float] = {}
        by_country: dict[str, dict[str, float]] = {}
        for kind, value in doc.items():
            if kind == "currency":
                continue
            if isinstance(value, dict):
                by_country[kind] = {str(k).upper(): _price(kind, v) for k, v in value.items()}
            else:
                flat[kind] = _price(kind, value)
        return cls(doc["currency"], flat, by_country)

    def of(self, kind: str, country: str) -> float | None:
        """The price of one message (one segment for SMS) of ``kind`` to ``country``."""
        if kind in self.flat:
            return self.flat[kind]
        table = self.by_country.get(kind)
        if table is None:
            return None
        return table.get(country.upper(), table.get("DEFAULT"))


def _price(kind: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"the price of {kind} must be a non-negative number, not {value!r}")
    return float(value)


def basis(kind: str, to: str, body: str) -> tuple[str, int]:
    """What a sent message is priced by: the destination's country and the segments."""
    if kind != "sms":
        return NO_COUNTRY, 1
    return country_of(to), segments.count(body).count


def country_of(number: str) -> str:
    """The region (``GB``) of an E.164 number, or :data:`NO_COUNTRY`.

    The country calling code alone decides it when one region has the code (most do);
    only a shared code (+1, +44, +7, …) takes phonenumbers' full parse, which costs
    about 35 µs and runs inside the flow's transaction for sandbox deliveries.
    """
    digits = number[1:] if number.startswith("+") else ""
    for length in (1, 2, 3):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:length] or 0))
        if regions:
            break
    else:
        return NO_COUNTRY
    if len(regions) == 1:
        return NO_COUNTRY if regions[0] == "001" else str(regions[0])
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return NO_COUNTRY
    return region if region and region not in ("ZZ", "001") else NO_COUNTRY
