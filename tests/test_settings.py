"""Settings: production refuses unsafe configurations; development keeps a generated secret."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from support.api import latest_code, signup
from verifyd import floors
from verifyd.app import create_app
from verifyd.runtime import build_runtime
from verifyd.settings import ConfigurationError, Settings

GOOD_SECRET = "43e96b97c4dc4aa36daf16b62f24b5afcbd83835e8ce11ce65777943b3da40ac"  # rand -hex 32
SHORT_SECRET = "y" * 31

#: A production configuration ``floors.check`` accepts; each case breaks one thing.
#: The provider names need not be installed: the check runs before plugins are loaded.
PRODUCTION_OK: dict[str, Any] = {
    "env": "production",
    "secret_key": GOOD_SECRET,
    "public_base_url": "https://verify.example",
    "sms_provider": "twilio",
    "email_provider": "smtp",
}

REFUSALS = [
    pytest.param({"sandbox": True}, "VERIFYD_SANDBOX must be off", id="sandbox-on"),
    pytest.param({"sms_provider": "console"}, "console provider", id="console-sms"),
    pytest.param({"email_provider": "console"}, "console provider", id="console-email"),
    pytest.param({"sms_provider": "sandbox"}, "sandbox provider", id="sandbox-provider"),
    pytest.param({"secret_key": None}, "VERIFYD_SECRET_KEY must be set", id="no-secret"),
    pytest.param({"secret_key": SHORT_SECRET}, "VERIFYD_SECRET_KEY must be set", id="short"),
    pytest.param({"sandbox_fixed_code": "1234"}, "sandbox-only", id="fixed-code"),
]


def test_the_production_baseline_is_accepted() -> None:
    """The refusals below are about one setting each, not about production as such."""
    settings = Settings(**PRODUCTION_OK)
    floors.check(settings)
    assert settings.sandbox_on is False


@pytest.mark.parametrize(("change", "message"), REFUSALS)
def test_production_refuses(change: dict[str, Any], message: str) -> None:
    settings = Settings(**{**PRODUCTION_OK, **change})
    with pytest.raises(ConfigurationError, match=message):
        floors.check(settings)
    with pytest.raises(ConfigurationError, match=message):
        build_runtime(settings)  # the app (create_app) and every worker build through here


def test_development_allows_what_production_refuses() -> None:
    floors.check(Settings(env="development", sandbox=True, sms_provider="console"))


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VERIFYD_")}
    return subprocess.run(
        [str(Path(sys.executable).with_name("verifyd")), *args],
        env={**clean, **env},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_in_production_exits_2_with_every_reason(tmp_path: Path) -> None:
    env = {
        "VERIFYD_ENV": "production",
        "VERIFYD_SANDBOX": "1",
        "VERIFYD_SMS_PROVIDER": "console",
        "VERIFYD_SECRET_KEY": SHORT_SECRET,
        "VERIFYD_DATABASE_URL": f"sqlite:///{tmp_path}/verifyd.db",
        "VERIFYD_PORT": "1",  # were it to get past the check, it could not listen anyway
    }
    proc = _cli(["serve"], env, tmp_path)
    assert proc.returncode == 2, proc.stderr
    for reason in ("VERIFYD_SANDBOX must be off", "console provider", "VERIFYD_SECRET_KEY"):
        assert reason in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # refused before touching the database


def test_cli_reports_an_invalid_setting_without_a_traceback(tmp_path: Path) -> None:
    proc = _cli(["migrate"], {"VERIFYD_SANDBOX_FIXED_CODE": "12"}, tmp_path)
    assert proc.returncode == 2
    assert "VERIFYD_SANDBOX_FIXED_CODE" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- the development secret -------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_generated_secret_survives_a_restart(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    """No VERIFYD_SECRET_KEY in development: one is made beside the database and reused,
    so a code sent before a restart is still accepted after it."""
    db_file = Path(database_url.removeprefix("sqlite:///"))
    secret_file = db_file.with_suffix(".secret")
    assert not secret_file.exists()

    with TestClient(create_app(make_settings(secret_key=None))) as first:
        created = signup(first, phone="+1 202 555 0142")
        code = latest_code(first, "+12025550142")
    assert secret_file.exists()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len(secret_file.read_text().strip()) >= 43  # at least 256 bits, URL-safe base64

    with TestClient(create_app(make_settings(secret_key=None))) as restarted:
        ver = created["verifications"][0]
        r = restarted.post(f"/v1/verifications/{ver['id']}/check", json={"code": code})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "approved"


def _start_together(settings: Settings, barrier: threading.Barrier, seen: list[bytes]) -> None:
    barrier.wait()
    seen.append(settings.resolve_secret())


def test_generated_secret_is_the_same_for_every_concurrent_start(tmp_path: Path) -> None:
    """Workers starting together (``--workers 2``) must agree on one whole secret."""
    for round_ in range(20):
        settings = Settings(database_url=f"sqlite:///{tmp_path}/{round_}/verifyd.db")
        barrier = threading.Barrier(8)
        seen: list[bytes] = []
        threads = [
            threading.Thread(target=_start_together, args=(settings, barrier, seen))
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(seen) == 8 and len(set(seen)) == 1, f"round {round_}: {set(seen)}"
        assert seen[0] and seen[0] == (tmp_path / str(round_) / "verifyd.secret").read_bytes()
        assert sorted(p.name for p in (tmp_path / str(round_)).iterdir()) == ["verifyd.secret"]


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "verifyd.secret").write_text("")
    settings = Settings(database_url=f"sqlite:///{tmp_path}/verifyd.db")
    with pytest.raises(ConfigurationError, match="is empty"):
        settings.resolve_secret()


def test_production_never_generates_a_secret(tmp_path: Path) -> None:
    settings = Settings(env="production", database_url=f"sqlite:///{tmp_path}/verifyd.db")
    with pytest.raises(ConfigurationError, match="VERIFYD_SECRET_KEY"):
        settings.resolve_secret()
    assert list(tmp_path.iterdir()) == []


def test_a_set_secret_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/verifyd.db", secret_key=GOOD_SECRET)
    assert settings.resolve_secret() == GOOD_SECRET.encode()
    assert list(tmp_path.iterdir()) == []


# --- the environment ----------------------------------------------------------------------


def test_comma_separated_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "VERIFYD_REDIRECT_ALLOWLIST", "https://a.example/welcome, https://b.example,"
    )
    monkeypatch.setenv("VERIFYD_ALLOWED_COUNTRIES", "us,gb")
    monkeypatch.setenv("VERIFYD_BLOCKED_NUMBER_TYPES", "")
    monkeypatch.setenv("VERIFYD_SANDBOX_PATTERNS", r"^\+99\d+$")
    settings = Settings()
    assert settings.redirect_allowlist == ["https://a.example/welcome", "https://b.example"]
    assert settings.allowed_countries == ["US", "GB"]
    assert settings.blocked_number_types == []
    assert settings.sandbox_patterns == [r"^\+99\d+$"]


def test_blocked_number_types_default_to_design() -> None:
    assert set(Settings().blocked_number_types) == {
        "PREMIUM_RATE",
        "SHARED_COST",
        "TOLL_FREE",
        "UAN",
        "VOICEMAIL",
        "PAGER",
        "FIXED_LINE",
        "PERSONAL_NUMBER",
    }


@pytest.mark.parametrize(
    ("env", "sandbox"),
    [
        ({}, True),
        ({"VERIFYD_ENV": "development", "VERIFYD_SANDBOX": "0"}, False),
        ({"VERIFYD_ENV": "production"}, False),
        ({"VERIFYD_ENV": "production", "VERIFYD_SANDBOX": "1"}, True),  # then refused, above
    ],
)
def test_sandbox_defaults_on_in_development_only(
    env: dict[str, str], sandbox: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings().sandbox_on is sandbox


def test_public_base_url_loses_its_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERIFYD_PUBLIC_BASE_URL", "https://verify.example/")
    assert Settings().public_base_url == "https://verify.example"


@pytest.mark.parametrize(
    ("code", "length"),
    [("123", 4), ("12345", 4), ("12a4", 4), ("1234", 6)],
)
def test_sandbox_fixed_code_must_fit_the_code_length(
    code: str, length: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERIFYD_SANDBOX_FIXED_CODE", code)
    monkeypatch.setenv("VERIFYD_SMS_CODE_LENGTH", str(length))
    with pytest.raises(ValidationError, match="VERIFYD_SANDBOX_FIXED_CODE"):
        Settings()


def test_sandbox_fixed_code_of_the_right_length(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERIFYD_SANDBOX_FIXED_CODE", "123456")
    monkeypatch.setenv("VERIFYD_SMS_CODE_LENGTH", "6")
    assert Settings().sandbox_fixed_code == "123456"


@pytest.mark.parametrize("length", ["3", "11"])
def test_code_length_is_4_to_10(length: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERIFYD_SMS_CODE_LENGTH", length)
    with pytest.raises(ValidationError, match="sms_code_length"):
        Settings()
