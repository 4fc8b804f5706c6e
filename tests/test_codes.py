"""verifyd.codes: code and token derivation, keyed hashes, ids and constant-time compare."""

from __future__ import annotations

import base64
import hashlib
import re
import string
import time
from collections import Counter

import pytest

from verifyd.codes import Secrets, hash_token, new_id, same

KEY = b"k" * 32
OTHER_KEY = b"K" * 32
URLSAFE = re.compile(r"^[A-Za-z0-9_-]+$")


@pytest.mark.parametrize("length", range(4, 11))
def test_code_has_the_asked_length_and_only_digits(length: int) -> None:
    s = Secrets(KEY)
    for i in range(50):
        code = s.code(f"ver_{i}", 0, length)
        assert len(code) == length
        assert set(code) <= set(string.digits)


def test_codes_keep_leading_zeros() -> None:
    # ~10% of 4-digit codes start with 0; a code rendered through int() would lose it.
    s = Secrets(KEY)
    codes = [s.code(f"ver_{i}", 0, 4) for i in range(500)]
    assert all(len(c) == 4 for c in codes)
    assert any(c.startswith("0") for c in codes)


def test_generations_give_different_codes() -> None:
    s = Secrets(KEY)
    codes = [s.code("ver_abc", g, 8) for g in range(20)]
    assert len(set(codes)) == 20
    # the same generation derives the same code again (the outbox re-derives it)
    assert s.code("ver_abc", 3, 8) == codes[3]


def test_code_derivation_depends_on_key_and_verification() -> None:
    a, b = Secrets(KEY), Secrets(OTHER_KEY)
    assert a.code("ver_abc", 0, 10) != b.code("ver_abc", 0, 10)
    assert a.code("ver_abc", 0, 10) != a.code("ver_abd", 0, 10)
    assert a.token("ver_abc", 0) != b.token("ver_abc", 0)
    assert a.token("ver_abc", 0) != a.token("ver_abd", 0)


def test_four_digit_codes_spread_over_the_code_space() -> None:
    s = Secrets(KEY)
    codes = [s.code(f"ver_{i}", 0, 4) for i in range(10_000)]
    # 10,000 uniform draws from 10,000 values hit ~6,321 distinct ones
    assert len(set(codes)) > 6_000
    for position in range(4):
        counts = Counter(c[position] for c in codes)
        assert set(counts) == set(string.digits)
        assert all(850 < n < 1_150 for n in counts.values()), counts


def test_token_is_256_url_safe_bits() -> None:
    s = Secrets(KEY)
    tokens = {s.token(f"ver_{i}", g) for i in range(20) for g in range(3)}
    assert len(tokens) == 60
    for token in tokens:
        assert len(token) == 43 and URLSAFE.match(token), token
        assert len(base64.urlsafe_b64decode(token + "=")) == 32


def test_hash_token_is_sha256_hex() -> None:
    token = Secrets(KEY).token("ver_abc", 0)
    digest = hash_token(token)
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in digest
    assert hash_token(Secrets(KEY).token("ver_abc", 1)) != digest


def test_hash_code_is_keyed_and_bound_to_the_verification() -> None:
    a, b = Secrets(KEY), Secrets(OTHER_KEY)
    h = a.hash_code("ver_abc", "1234")
    assert re.fullmatch(r"[0-9a-f]{64}", h)
    assert a.hash_code("ver_abc", "1234") == h  # deterministic: checks can compare
    assert a.hash_code("ver_abd", "1234") != h  # not reusable on another verification
    assert a.hash_code("ver_abc", "1235") != h
    assert b.hash_code("ver_abc", "1234") != h  # keyed: no offline table without the key
    # unkeyed digests of the code do not match either
    assert h != hashlib.sha256(b"1234").hexdigest()
    # the separator keeps (id, code) pairs apart: "ver_a" + "11234" is not "ver_a1" + "1234"
    assert a.hash_code("ver_a", "11234") != a.hash_code("ver_a1", "1234")


def test_same_compares_strings() -> None:
    assert same("abc", "abc")
    assert not same("abc", "abd")
    assert not same("abc", "abcd")
    assert not same("", "a")
    assert same("", "")


def test_new_id_is_prefixed_and_unguessable() -> None:
    ids = {new_id("ver") for _ in range(2_000)}
    assert len(ids) == 2_000
    for value in ids:
        prefix, _, rest = value.partition("_")
        assert prefix == "ver"
        assert URLSAFE.match(rest)
        stamp, random_part = rest[:12], rest[12:]
        assert abs(int(stamp, 16) / 1000 - time.time()) < 60  # the creation time
        assert len(random_part) * 6 >= 96  # >= 96 random bits in url-safe base64
    assert len({value[16:] for value in ids}) == 2_000  # no two share their random part


def test_ids_sort_by_creation() -> None:
    # Time first, in hex: a later id sorts after an earlier one, byte by byte (how
    # SQLite and PostgreSQL's C collation compare), so new rows stay together in
    # every index on an id.
    earlier = new_id("acc")
    time.sleep(0.002)
    later = new_id("acc")
    assert earlier.encode() < later.encode()
