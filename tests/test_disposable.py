"""Unit tests of verifyd.disposable: the packaged list, the operator file, parent domains."""

from __future__ import annotations

from pathlib import Path

import pytest
from disposable_email_domains import blocklist

from verifyd.disposable import DisposableDomains
from verifyd.settings import ConfigurationError, Settings


@pytest.fixture(scope="module")
def packaged() -> DisposableDomains:
    return DisposableDomains()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "disposable.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "value",
    [
        "mailinator.com",
        "someone@mailinator.com",
        "x.mailinator.com",
        "a.b.c.mailinator.com",
        "someone@deep.sub.mailinator.com",
        "MAILINATOR.COM",
        " mailinator.com. ",
        "guerrillamail.com",
    ],
)
def test_the_packaged_list_and_its_subdomains(packaged: DisposableDomains, value: str) -> None:
    assert packaged.is_disposable(value)


@pytest.mark.parametrize(
    "value",
    [
        "gmail.com",
        "someone@gmail.com",
        "outlook.com",
        "example.org",
        # a parent matches, a mere ending does not
        "zzzmailinator.com",
        "mailinator.com.example.org",
        "com",
    ],
)
def test_clean_domains_are_not_disposable(packaged: DisposableDomains, value: str) -> None:
    assert value.partition("@")[2] not in blocklist and value not in blocklist
    assert not packaged.is_disposable(value)


def test_internationalised_domains_match_their_xn_spelling(packaged: DisposableDomains) -> None:
    # the packaged list spells it xn--d-bga.net; email-validator hands over Unicode
    assert "xn--d-bga.net" in blocklist
    assert packaged.is_disposable("someone@dé.net")
    assert packaged.is_disposable("xn--d-bga.net")


@pytest.mark.parametrize(
    "odd",
    [
        "",
        "@",
        "someone@",
        ".",
        "..",
        "a..mailinator.com",
        "mailinator..com",
        "exa mple.com",
        "\ud800.com",
        "\x00",
        "🙂" * 100 + ".com",
        "a." * 100_000 + "com",
        "x" * 100_000,
    ],
)
def test_odd_input_is_not_disposable_and_never_crashes(
    packaged: DisposableDomains, odd: str
) -> None:
    assert packaged.is_disposable(odd) is False


def test_a_very_long_subdomain_of_a_listed_domain_still_matches(
    packaged: DisposableDomains,
) -> None:
    assert packaged.is_disposable("a." * 100_000 + "mailinator.com")


def test_count_is_the_packaged_list(packaged: DisposableDomains) -> None:
    assert packaged.count == len(blocklist) > 1000


def test_the_operator_file_adds_domains(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# our own list\n"
        "\n"
        "  Burner.Example  \n"
        "throwaway.example # seen in March\n"
        "@at.example\n"
        "*.star.example\n"
        "   \n"
        "mailinator.com\n",
    )
    domains = DisposableDomains(path=path)
    for value in (
        "burner.example",
        "someone@BURNER.example",
        "x.throwaway.example",
        "at.example",
        "star.example",
        "y.star.example",
    ):
        assert domains.is_disposable(value), value
    assert domains.is_disposable("mailinator.com")
    assert not domains.is_disposable("example")
    assert not domains.is_disposable("gmail.com")
    # mailinator.com was already listed; the comment line is no domain
    assert domains.count == len(blocklist) + 4
    assert not DisposableDomains().is_disposable("burner.example")


def test_the_settings_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "burner.example\n")
    settings = Settings(secret_key="x" * 40, disposable_domains_file=path)
    assert DisposableDomains(settings).is_disposable("a@burner.example")
    default = DisposableDomains(Settings(secret_key="x" * 40))
    assert not default.is_disposable("a@burner.example")
    assert default.is_disposable("a@mailinator.com")
    # an explicit path wins over the settings' file
    other = tmp_path / "other.txt"
    other.write_text("other.example\n", encoding="utf-8")
    chosen = DisposableDomains(settings, path=other)
    assert chosen.is_disposable("other.example")
    assert not chosen.is_disposable("burner.example")


def test_a_missing_configured_file_fails_at_construction(tmp_path: Path) -> None:
    settings = Settings(secret_key="x" * 40, disposable_domains_file=tmp_path / "gone.txt")
    with pytest.raises(ConfigurationError, match="gone.txt"):
        DisposableDomains(settings)


def test_the_operator_file_may_name_unicode_domains(tmp_path: Path) -> None:
    domains = DisposableDomains(path=write(tmp_path, "Bürner.example\n"))
    assert domains.is_disposable("someone@bürner.example")
    assert domains.is_disposable("xn--brner-kva.example")


def test_a_missing_file_is_a_configuration_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "disposable.txt"
    with pytest.raises(ConfigurationError) as info:
        DisposableDomains(path=missing)
    assert str(missing) in str(info.value)
    assert "VERIFYD_DISPOSABLE_DOMAINS_FILE" in str(info.value)


def test_a_directory_or_non_utf8_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        DisposableDomains(path=tmp_path)
    binary = tmp_path / "latin1.txt"
    binary.write_bytes(b"b\xfcrner.example\n")
    with pytest.raises(ConfigurationError) as info:
        DisposableDomains(path=binary)
    assert str(binary) in str(info.value)


def test_a_line_that_is_no_domain_is_refused_with_its_number(tmp_path: Path) -> None:
    path = write(tmp_path, "fine.example\nsomeone@bad.example\n")
    with pytest.raises(ConfigurationError) as info:
        DisposableDomains(path=path)
    assert f"{path}, line 2" in str(info.value)
