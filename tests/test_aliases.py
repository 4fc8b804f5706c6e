"""Unit tests of verifyd.aliases: provider-aware canonical mailboxes."""

from __future__ import annotations

import pytest

from verifyd.aliases import alias_key, is_alias
from verifyd.destinations import Destinations
from verifyd.settings import Settings


@pytest.mark.parametrize(
    "email",
    [
        "jdoe@gmail.com",
        "j.doe@gmail.com",
        "j.d.o.e@gmail.com",
        "jdoe+news@gmail.com",
        "j.doe+news+more@gmail.com",
        "jdoe@googlemail.com",
        "j.doe+x@googlemail.com",
    ],
)
def test_gmail_dot_and_plus_variants_share_one_key(email: str) -> None:
    assert alias_key(email) == "jdoe@gmail.com"


def test_the_canonical_gmail_address_is_not_an_alias() -> None:
    assert not is_alias("jdoe@gmail.com")
    assert is_alias("j.doe@gmail.com")
    assert is_alias("jdoe+news@gmail.com")
    assert is_alias("jdoe@googlemail.com")


def test_outlook_dots_are_distinct_mailboxes_but_plus_tags_are_not() -> None:
    assert alias_key("j.doe@outlook.com") == "j.doe@outlook.com"
    assert alias_key("jdoe@outlook.com") == "jdoe@outlook.com"
    assert alias_key("j.doe+shop@outlook.com") == "j.doe@outlook.com"
    assert not is_alias("j.doe@outlook.com")


def test_brands_are_never_merged() -> None:
    keys = {alias_key(f"jdoe@{d}") for d in ("outlook.com", "hotmail.com", "live.com")}
    assert keys == {"jdoe@outlook.com", "jdoe@hotmail.com", "jdoe@live.com"}
    assert alias_key("jdoe@proton.me") != alias_key("jdoe@protonmail.com")


def test_apple_domains_share_the_icloud_mailbox() -> None:
    assert alias_key("j.doe@me.com") == "j.doe@icloud.com"
    assert alias_key("j.doe+x@mac.com") == "j.doe@icloud.com"
    assert alias_key("j.doe+x@icloud.com") == "j.doe@icloud.com"
    assert is_alias("j.doe@me.com")


def test_fastmail_subdomain_addressing() -> None:
    assert alias_key("shop@jdoe.fastmail.com") == "jdoe@fastmail.com"
    assert alias_key("jdoe+shop@fastmail.com") == "jdoe@fastmail.com"
    # only one label names the user; deeper names are left alone
    assert alias_key("a@b.c.fastmail.com") == "a@b.c.fastmail.com"


def test_plus_tag_is_stripped_on_an_unknown_domain_but_dots_are_kept() -> None:
    assert alias_key("j.doe+billing@example.org") == "j.doe@example.org"
    assert alias_key("j.doe@example.org") == "j.doe@example.org"


def test_yahoo_dash_is_left_as_written() -> None:
    assert alias_key("nick-keyword@yahoo.com") == "nick-keyword@yahoo.com"
    assert alias_key("jdoe+x@yahoo.com") == "jdoe@yahoo.com"


@pytest.mark.parametrize(
    "email",
    ["+tag@example.org", "+@example.org", "+tag@gmail.com", '"a+b"@example.org'],
)
def test_no_mailbox_name_to_fall_back_to_keeps_the_address(email: str) -> None:
    assert alias_key(email) == email
    assert not is_alias(email)


def test_a_trailing_plus_is_an_empty_tag() -> None:
    assert alias_key("jdoe+@example.org") == "jdoe@example.org"


def test_a_gmail_local_part_of_only_dots_is_kept() -> None:
    assert alias_key("...@gmail.com") == "...@gmail.com"


@pytest.mark.parametrize(
    ("email", "key"),
    [
        ("jürgen+x@example.de", "jürgen@example.de"),
        ("ü.ber+tag@gmail.com", "über@gmail.com"),
        ("用户+标签@例子.中国", "用户@例子.中国"),
        ("\ud800+x@example.org", "\ud800@example.org"),
    ],
)
def test_unicode_local_parts(email: str, key: str) -> None:
    assert alias_key(email) == key


@pytest.mark.parametrize("odd", ["", "@", "no-at-sign", "a@", "@gmail.com", "a@@b"])
def test_odd_input_is_its_own_key(odd: str) -> None:
    assert alias_key(odd) == odd
    assert not is_alias(odd)


def test_a_given_key_is_used_as_is() -> None:
    assert is_alias("jdoe@example.org", key="other@example.org")
    assert not is_alias("jdoe+x@example.org", key="jdoe+x@example.org")


def test_keys_of_addresses_as_destinations_normalises_them() -> None:
    parse = Destinations(Settings(secret_key="x" * 40, sandbox=False)).email
    first = parse("J.Doe+Signup@GoogleMail.com").value
    second = parse("  jdoe@gmail.com ").value
    assert first != second
    assert alias_key(first) == alias_key(second) == "jdoe@gmail.com"
