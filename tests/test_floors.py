"""Production floors: ``verifyd serve`` refuses a guessable secret and a non-https public URL,
warns (log and ``/metrics``) about settings that weaken a defence, and hides the API docs."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from support.gateway import Gateway
from support.net import get
from support.smtpd import SmtpServer
from support.twilio_gateway import ACCOUNT_SID, AUTH_TOKEN, FROM, TwilioGateway
from test_cli import VERIFYD, cli_env
from test_cli_serve import serving
from verifyd import floors
from verifyd.app import create_app
from verifyd.settings import Settings

#: ``openssl rand -hex 32``: what the README tells an operator to run.
SECRET = "e8aa24426b88089607d5a46429dbeb4897ff65ea9bfc470c2da59841d115b259"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"floors-test-webhook-secret-32byte").decode()
PUBLIC = "https://verify.example"

# --- the entropy judge ------------------------------------------------------------------

GENERATED: dict[str, Callable[[], str]] = {
    "secrets.token_urlsafe(32)": lambda: secrets.token_urlsafe(32),
    "openssl rand -hex 32": lambda: secrets.token_hex(32),
    "openssl rand -base64 32": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
}

WEAK = [
    pytest.param("a" * 32, id="32-identical"),
    pytest.param("p" * 64, id="64-identical"),
    pytest.param("0123456789" * 4, id="digits-repeated"),
    pytest.param("abcdefghijklmnopqrstuvwxyz0123456789", id="alphabet-walk"),
    pytest.param("abc" * 20, id="short-cycle"),
    pytest.param("changeme-" * 5, id="word-repeated"),
    pytest.param(secrets.token_hex(8) * 4, id="random-block-repeated"),
    pytest.param("".join(secrets.choice("01") for _ in range(64)), id="binary-alphabet"),
    pytest.param("production-secret-" + "x" * 32, id="placeholder-padded"),
]


@pytest.mark.parametrize("how", sorted(GENERATED))
def test_generated_secrets_always_pass(how: str) -> None:
    """Thousands of keys made the documented ways: none is ever refused."""
    scores = [floors.secret_bits(GENERATED[how]()) for _ in range(3000)]
    assert min(scores) >= floors.SECRET_MIN_BITS + 40, (how, min(scores))
    assert floors.secret_problem(GENERATED[how]()) is None


@pytest.mark.parametrize("key", WEAK)
def test_patterned_secrets_are_refused(key: str) -> None:
    assert len(key) >= floors.SECRET_MIN_LENGTH  # refused for entropy, not for length
    problem = floors.secret_problem(key)
    assert problem is not None and "too little entropy" in problem
    assert key not in problem  # never quoted


def test_a_short_secret_is_refused_for_its_length() -> None:
    problem = floors.secret_problem(secrets.token_hex(32)[:31])
    assert problem is not None and "32+ characters" in problem


def test_the_estimate_is_capped_by_the_distinct_characters() -> None:
    """Whatever the length, 16 distinct characters give at most 4 bits each."""
    key = secrets.token_hex(32)
    assert floors.secret_bits(key) <= 4 * len(key)
    assert floors.secret_bits("ab" * 100) <= 1


# --- refusals, as a user meets them -----------------------------------------------------


def _production(database_url: str, **extra: str) -> dict[str, str]:
    env = cli_env(database_url)
    env.update(
        VERIFYD_ENV="production",
        VERIFYD_SECRET_KEY=SECRET,
        VERIFYD_PUBLIC_BASE_URL=PUBLIC,
        VERIFYD_SANDBOX="0",
        VERIFYD_SMS_PROVIDER="webhook",
        VERIFYD_EMAIL_PROVIDER="webhook",
        VERIFYD_WEBHOOK_URL="https://gateway.example/hook",
        VERIFYD_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    env.update(extra)
    return env


REFUSED = [
    ({"VERIFYD_SECRET_KEY": "a" * 32}, "VERIFYD_SECRET_KEY has too little entropy"),
    ({"VERIFYD_SECRET_KEY": "0123456789" * 4}, "VERIFYD_SECRET_KEY has too little entropy"),
    ({"VERIFYD_SECRET_KEY": SECRET[:31]}, "VERIFYD_SECRET_KEY must be set to 32+ characters"),
    ({"VERIFYD_PUBLIC_BASE_URL": None}, "VERIFYD_PUBLIC_BASE_URL must be set"),
    ({"VERIFYD_PUBLIC_BASE_URL": "http://127.0.0.1:8000"}, "VERIFYD_PUBLIC_BASE_URL must be set"),
    ({"VERIFYD_PUBLIC_BASE_URL": "http://verify.example"}, "must be an https:// URL"),
    ({"VERIFYD_PUBLIC_BASE_URL": "https://"}, "must be an https:// URL with a host"),
]


def test_serve_refuses_each_floor_with_exit_2_and_says_why(tmp_path: Path) -> None:
    """Each refusal alone, as ``verifyd serve`` is run: one line on stderr, exit 2, no
    traceback, no banner, and the database never opened."""
    database = tmp_path / "never.db"
    procs = []
    for change, _ in REFUSED:
        env = _production(f"sqlite:///{database}")
        for name, value in change.items():
            if value is None:
                del env[name]
            else:
                env[name] = value
        procs.append(
            subprocess.Popen(
                [*VERIFYD, "serve", "--port", "1"],
                env=env,
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        )
    for (change, message), proc in zip(REFUSED, procs, strict=True):
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # a server that did start
        assert proc.returncode == 2, (change, err)
        assert out == "" and err.startswith("verifyd: production mode: "), (change, err)
        assert message in err and len(err.splitlines()) == 1, (change, err)
        assert "Traceback" not in err
        secret = change.get("VERIFYD_SECRET_KEY")
        assert secret is None or secret not in err  # the secret is never echoed
    assert not database.exists()


def test_every_refusal_is_named_at_once() -> None:
    settings = Settings(env="production", secret_key="z" * 40, sandbox=False)
    problems = floors.refusals(settings)
    assert any("VERIFYD_SECRET_KEY" in p for p in problems)
    assert any("VERIFYD_PUBLIC_BASE_URL" in p for p in problems)


# --- warnings: logged at start and counted in /metrics -----------------------------------


def _weakened(floor: floors.Floor) -> str:
    """An environment value for ``floor``'s setting that weakens it by the least step."""
    default = Settings.model_fields[floor.field].get_default(call_default_factory=True)
    if floor.direction == "fewer":
        return ",".join(default[1:])
    step = 1 if floor.direction == "higher" else -1
    return str(default + step)


@pytest.fixture
def gateways() -> Iterator[tuple[TwilioGateway, Gateway, SmtpServer]]:
    with TwilioGateway() as twilio, Gateway() as webhook, SmtpServer("none") as smtp:
        yield twilio, webhook, smtp


def _metrics(base_url: str) -> dict[str, float]:
    status, body = get(base_url + "/metrics")
    assert status == 200, body
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    family = families["verifyd_config_warnings"]
    assert family.type == "gauge"
    return {s.labels["setting"]: s.value for s in family.samples}


def test_a_production_server_warns_about_each_weakened_setting(
    tmp_path: Path, gateways: tuple[TwilioGateway, Gateway, SmtpServer]
) -> None:
    """Every floor of the table moved one step the wrong way, plaintext SMTP and two
    http:// gateways: the server starts, logs one warning per setting on
    ``verifyd.floors``, and ``/metrics`` has ``verifyd_config_warnings{setting}`` = 1."""
    twilio, webhook, smtp = gateways
    url = f"sqlite:///{tmp_path}/verifyd.db"
    subprocess.run([*VERIFYD, "migrate"], env=cli_env(url), cwd=tmp_path, check=True)
    weakened = {f"VERIFYD_{f.field.upper()}": _weakened(f) for f in floors.FLOORS}
    env = _production(
        url,
        VERIFYD_SMS_PROVIDER="twilio,webhook",
        VERIFYD_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        VERIFYD_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        VERIFYD_TWILIO_FROM=FROM,
        VERIFYD_TWILIO_BASE_URL=twilio.url,
        VERIFYD_WEBHOOK_URL=webhook.url + "/hook",
        VERIFYD_EMAIL_PROVIDER="smtp",
        VERIFYD_SMTP_HOST="127.0.0.1",
        VERIFYD_SMTP_PORT=str(smtp.port),
        VERIFYD_SMTP_TLS="none",
        VERIFYD_SMTP_FROM="noreply@example.com",
        **weakened,
    )
    expected = {*weakened, "VERIFYD_SMTP_TLS", "VERIFYD_TWILIO_BASE_URL", "VERIFYD_WEBHOOK_URL"}
    with serving(env, tmp_path) as server:
        assert _metrics(server.base_url) == dict.fromkeys(expected, 1.0)
        output = server.output()
    lines = [ln for ln in output.splitlines() if ln.startswith("WARNING verifyd.floors: ")]
    assert len(lines) == len(expected), output
    for setting in expected:
        assert sum(setting in ln for ln in lines) == 1, (setting, lines)
    assert "Traceback" not in output


def test_a_production_server_on_its_defaults_warns_about_nothing(
    tmp_path: Path, gateways: tuple[TwilioGateway, Gateway, SmtpServer]
) -> None:
    """Production on its defaults (an SMTP relay with STARTTLS's default, the webhook on
    https) raises no warning, and serves no API documents."""
    _, _, smtp = gateways
    url = f"sqlite:///{tmp_path}/verifyd.db"
    subprocess.run([*VERIFYD, "migrate"], env=cli_env(url), cwd=tmp_path, check=True)
    env = _production(
        url,
        VERIFYD_EMAIL_PROVIDER="smtp",
        VERIFYD_SMTP_HOST="127.0.0.1",
        VERIFYD_SMTP_PORT=str(smtp.port),
        VERIFYD_SMTP_FROM="noreply@example.com",
    )
    with serving(env, tmp_path) as server:
        assert _metrics(server.base_url) == {}
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert get(server.base_url + path)[0] == 404, path
        output = server.output()
    assert "verifyd.floors" not in output


def test_announce_logs_one_warning_per_setting(caplog: pytest.LogCaptureFixture) -> None:
    """What ``verifyd worker`` logs at start, as ``verifyd serve`` does (tested above)."""
    settings = Settings(env="production", sandbox=False, guess_budget_per_day=1_000_000)
    with caplog.at_level(logging.WARNING, logger="verifyd.floors"):
        found = floors.announce(settings)
    assert [w.setting for w in found] == ["VERIFYD_GUESS_BUDGET_PER_DAY"]
    (record,) = caplog.records
    assert record.name == "verifyd.floors" and record.levelno == logging.WARNING
    assert "VERIFYD_GUESS_BUDGET_PER_DAY=1000000 is above its default 10" in record.getMessage()


def test_development_warns_about_nothing() -> None:
    assert floors.warnings(Settings(guess_budget_per_day=1_000_000, blocked_number_types="")) == []


def test_every_floor_names_a_setting_with_a_comparable_default() -> None:
    """The table the coordinator extends: each row is a real setting, and its default
    itself raises no warning (so a fresh production install is quiet)."""
    for floor in floors.FLOORS:
        assert floor.field in Settings.model_fields, floor
    assert floors.warnings(Settings(env="production", sandbox=False)) == []


# --- API documents ----------------------------------------------------------------------


def _app_settings(tmp_path: Path, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path}/verifyd.db",
        "secret_key": SECRET,
        "public_base_url": PUBLIC,
    }
    if values.get("env") == "production":
        base |= {
            "sandbox": False,
            "sms_provider": "webhook",
            "email_provider": "webhook",
            "webhook_url": "https://gateway.example/hook",
            "webhook_secret": WEBHOOK_SECRET,
        }
    return Settings(**{**base, **values})


@pytest.mark.parametrize(
    ("values", "served"),
    [
        pytest.param({}, True, id="development"),
        pytest.param({"env": "production"}, False, id="production"),
        pytest.param({"env": "production", "api_docs": True}, True, id="production-on"),
        pytest.param({"api_docs": False}, False, id="development-off"),
    ],
)
def test_api_docs_follow_the_setting(tmp_path: Path, values: dict[str, Any], served: bool) -> None:
    app = create_app(_app_settings(tmp_path, **values))
    try:
        client = TestClient(app, raise_server_exceptions=False)
        unknown = client.get("/no-such-path")
        for path in ("/docs", "/redoc", "/openapi.json"):
            r = client.get(path)
            if served:
                assert r.status_code == 200, path
            else:
                assert r.status_code == 404, path
                assert r.headers["content-type"] == unknown.headers["content-type"]
                assert r.json()["code"] == unknown.json()["code"]
        assert app.openapi()["paths"]  # make openapi builds the document either way
    finally:
        app.state.runtime.db.dispose()
