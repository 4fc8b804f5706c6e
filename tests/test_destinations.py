"""Unit tests of verifyd.destinations: sandbox recognition, validation, masking."""

from __future__ import annotations

from typing import Any

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType

from verifyd.destinations import Destination, Destinations, mask
from verifyd.errors import InvalidRequest
from verifyd.settings import Settings


def destinations(**overrides: Any) -> Destinations:
    values: dict[str, Any] = {"secret_key": "x" * 40, "sandbox": True}
    values.update(overrides)
    return Destinations(Settings(**values))


def refused(call: Any, raw: str) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        call(raw)
    return info.value


def example(region: str, kind: int) -> str:
    number = phonenumbers.example_number_for_type(region, kind)
    assert number is not None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# ---------------------------------------------------------------- sandbox


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("+1 202 555 0142", "+12025550142"),
        ("+1 (202) 555-0100", "+12025550100"),
        ("+1-999-555-0199", "+19995550199"),
        ("+1.415.555.0123", "+14155550123"),
        ("0012025550142", "+12025550142"),
        ("+44 7700 900000", "+447700900000"),
        ("+44 7700 900999", "+447700900999"),
    ],
)
def test_sandbox_numbers_are_recognised_before_validation(raw: str, value: str) -> None:
    d = destinations().phone(raw)
    assert d == Destination("phone", value, sandbox=True)


@pytest.mark.parametrize(
    "raw",
    [
        "+1 202 555 0200",  # outside 0100-0199: a real (if odd) US number
        "+1 202 555 0099",
    ],
)
def test_neighbours_of_the_sandbox_range_are_not_sandbox(raw: str) -> None:
    d = destinations().phone(raw)
    assert d.sandbox is False


@pytest.mark.parametrize("raw", ["+1 102 555 0142", "+44 7700 901000"])
def test_outside_sandbox_ranges_the_usual_validation_applies(raw: str) -> None:
    assert refused(destinations().phone, raw).code == "invalid_phone"


def test_sandbox_numbers_skip_type_and_country_checks() -> None:
    d = destinations(allowed_countries=["FR"], blocked_number_types=["FIXED_LINE_OR_MOBILE"])
    assert d.phone("+1 202 555 0142").sandbox
    assert d.phone("+44 7700 900123").sandbox


@pytest.mark.parametrize("raw", ["alice@example.test", "  Bob@Example.TEST "])
def test_sandbox_email_domain(raw: str) -> None:
    d = destinations().email(raw)
    assert d.sandbox is True and d.kind == "email"
    assert d.value == raw.strip().lower()


def test_subdomain_of_example_test_is_not_the_sandbox_domain() -> None:
    assert refused(destinations().email, "a@mail.example.test").code == "invalid_email"


def test_sandbox_off_recognises_nothing() -> None:
    d = destinations(sandbox=False)
    assert not d.is_sandbox("+12025550142")
    assert not d.is_sandbox("alice@example.test")
    assert refused(d.email, "alice@example.test").code == "invalid_email"
    assert refused(d.phone, "+44 7700 900123").code == "invalid_phone"
    assert refused(d.phone, "+1 999 555 0199").code == "invalid_phone"


def test_sandbox_off_fictional_nanp_numbers_are_invalid() -> None:
    d = destinations(sandbox=False)
    assert refused(d.phone, "+1 202 555 0142").code == "invalid_phone"


def test_extra_sandbox_patterns_from_settings() -> None:
    d = destinations(sandbox_patterns=[r"^\+15005550006$", r"@loadtest\.example\.com$"])
    assert d.phone("+1 500 555 0006").sandbox
    assert d.email("bot1@loadtest.example.com").sandbox
    assert not d.email("bot1@example.com").sandbox
    off = destinations(sandbox=False, sandbox_patterns=[r"^\+15005550006$"])
    assert not off.is_sandbox("+15005550006")


def test_sandbox_email_patterns_may_use_special_use_domains() -> None:
    # Recognised before validation: email-validator alone refuses .invalid and localhost.
    d = destinations(sandbox_patterns=[r"@loadtest\.invalid$"])
    assert d.email("Bot7@LoadTest.invalid") == Destination("email", "bot7@loadtest.invalid", True)
    assert refused(d.email, "bot7@other.invalid").code == "invalid_email"
    assert refused(d.email, "a b@loadtest.invalid").code == "invalid_email"


# ---------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("+1 415 555 2671", "+14155552671"),
        ("+1 (415) 555-2671", "+14155552671"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+44 7400 123456", "+447400123456"),
    ],
)
def test_real_numbers_normalise_to_e164(raw: str, value: str) -> None:
    d = destinations().phone(raw)
    assert (d.value, d.sandbox, d.flags) == (value, False, ())


def test_nanp_fixed_line_or_mobile_is_not_blocked() -> None:
    number = phonenumbers.parse("+1 415 555 2671")
    assert phonenumbers.number_type(number) == PhoneNumberType.FIXED_LINE_OR_MOBILE
    assert destinations().phone("+1 415 555 2671").value == "+14155552671"


@pytest.mark.parametrize(
    "raw",
    ["", "hello", "+", "+1", "+1 202 555 01", "+999 1234 5678", "+1 202 555 01420000", "12345"],
)
def test_invalid_numbers(raw: str) -> None:
    err = refused(destinations().phone, raw)
    assert err.code == "invalid_phone"
    assert [(e.field, e.code) for e in err.errors] == [("phone", "invalid_phone")]


def test_national_format_needs_a_default_region() -> None:
    assert refused(destinations().phone, "415 555 2671").code == "invalid_phone"
    assert destinations(default_region="US").phone("(415) 555-2671").value == "+14155552671"


@pytest.mark.parametrize(
    ("region", "kind"),
    [
        ("US", PhoneNumberType.TOLL_FREE),
        ("US", PhoneNumberType.PREMIUM_RATE),
        ("GB", PhoneNumberType.FIXED_LINE),
        ("GB", PhoneNumberType.PAGER),
        ("GB", PhoneNumberType.UAN),
        ("FR", PhoneNumberType.SHARED_COST),
    ],
)
def test_default_blocked_number_types(region: str, kind: int) -> None:
    err = refused(destinations().phone, example(region, kind))
    assert err.code == "number_type_blocked"
    assert [e.field for e in err.errors] == ["phone"]


def test_blocked_types_come_from_settings() -> None:
    toll_free = example("US", PhoneNumberType.TOLL_FREE)
    assert destinations(blocked_number_types=[]).phone(toll_free).value == toll_free
    mobile = example("GB", PhoneNumberType.MOBILE)
    err = refused(destinations(blocked_number_types=["mobile"]).phone, mobile)
    assert err.code == "number_type_blocked"


def test_voip_is_flagged_not_blocked() -> None:
    voip = example("GB", PhoneNumberType.VOIP)
    d = destinations().phone(voip)
    assert d.value == voip and "voip" in d.flags


def test_country_allow_list() -> None:
    d = destinations(allowed_countries=["us", "CA"])
    assert d.phone("+1 415 555 2671").value == "+14155552671"
    err = refused(d.phone, "+33 6 12 34 56 78")
    assert err.code == "country_not_allowed"
    assert [e.field for e in err.errors] == ["phone"]


def test_empty_country_allow_list_allows_all() -> None:
    assert destinations(allowed_countries=[]).phone("+33 6 12 34 56 78").value == "+33612345678"


# ---------------------------------------------------------------- emails


def test_real_email_is_accepted_without_network() -> None:
    d = destinations().email(" alice@example.com ")
    assert (d.value, d.sandbox) == ("alice@example.com", False)


def test_email_case_variants_are_one_destination() -> None:
    d = destinations()
    assert d.email("Alice@Example.COM").value == d.email("alice@example.com").value


@pytest.mark.parametrize(
    "raw", ["", "no-at-sign", "a@", "@example.com", "a@b", "a@localhost", "a b@example.com"]
)
def test_invalid_emails(raw: str) -> None:
    err = refused(destinations().email, raw)
    assert err.code == "invalid_email"
    assert [(e.field, e.code) for e in err.errors] == [("email", "invalid_email")]


# ---------------------------------------------------------------- masking


def test_masks_from_the_design() -> None:
    assert mask("phone", "+12025550142") == "+1 202-555-••42"
    assert mask("email", "alice@example.test") == "a•••@example.test"


@pytest.mark.parametrize("value", ["+447700900123", "+33612345678", "+14155552671"])
def test_phone_mask_hides_two_digits_and_keeps_the_last_two(value: str) -> None:
    masked = mask("phone", value)
    digits = "".join(c for c in masked if c.isdigit())
    assert masked.count("•") == 2
    assert value.endswith(digits[-2:]) and masked.endswith(digits[-2:])
    assert digits != value[1:]


def test_email_mask_shows_only_the_first_letter_and_the_domain() -> None:
    masked = mask("email", "verylongname@example.com")
    assert masked == "v•••@example.com"
    assert "erylong" not in masked


@pytest.mark.parametrize(
    "local", ["<script>", '"unterminated', "a..b", ".lead", "trail.", "sp ace", "x\x00y"]
)
@pytest.mark.parametrize("domain", ["example.test", "loadtest.invalid"])
def test_sandbox_addresses_pass_the_same_local_part_rules(local: str, domain: str) -> None:
    d = destinations(sandbox_patterns=[r"@loadtest\.invalid$"])
    assert refused(d.email, f"{local}@gmail.com").code == "invalid_email"
    error = refused(d.email, f"{local}@{domain}")
    assert error.code == "invalid_email"
    assert [e.field for e in error.errors] == ["email"]


def test_sandbox_special_use_domains_still_relax_only_the_domain() -> None:
    d = destinations(sandbox_patterns=[r"@loadtest\.invalid$"])
    assert d.email("O'Brien+1@LoadTest.invalid") == Destination(
        "email", "o'brien+1@loadtest.invalid", True
    )
    assert refused(d.email, "bot@loadtest..invalid").code == "invalid_email"
