"""Settings from ``VERIFYD_*`` environment variables; built by the caller, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from verifyd import devsecret, proxies

#: Number types refused for SMS by default (phonenumbers' ``PhoneNumberType`` names).
DEFAULT_BLOCKED_NUMBER_TYPES = (
    "PREMIUM_RATE",
    "SHARED_COST",
    "TOLL_FREE",
    "UAN",
    "VOICEMAIL",
    "PAGER",
    "FIXED_LINE",
    "PERSONAL_NUMBER",
)

#: Regions refused for SMS by default: ``001`` is phonenumbers' region of the
#: non-geographic satellite and international-network ranges (+881, +870, +882, …),
#: which it types ``MOBILE`` although an SMS there costs many times a mobile one.
DEFAULT_BLOCKED_REGIONS = ("001",)

#: Suspect signals a signup can raise; ``VERIFYD_BLOCKED_SIGNALS`` turns any into a block.
SIGNALS = (
    "disposable_email",
    "email_alias",
    "voip",
    "non_mobile",
    "velocity_ip",
    "velocity_prefix",
    "blocked_before",
)

CommaList = Annotated[list[str], NoDecode]


class ConfigurationError(Exception):
    """The settings cannot run the service (raised at start-up, never per request)."""


class Settings(BaseSettings):
    """Every knob of verifyd; each field is read from ``VERIFYD_<FIELD>``.

    Lists are comma-separated in the environment (``VERIFYD_REDIRECT_ALLOWLIST=a,b``).
    """

    model_config = SettingsConfigDict(env_prefix="VERIFYD_", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///var/verifyd.db"
    # The database's connections (verifyd.db); sizing advice in README → Operations.
    #: Pooled connections per process (PostgreSQL; on SQLite, the readers beside the writer).
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    #: Connections a PostgreSQL pool may open past ``db_pool_size`` under a burst.
    db_pool_overflow: int = Field(default=10, ge=0, le=1000)
    #: How long a request waits for a pooled connection before it is answered 503.
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    #: How long opening a PostgreSQL connection may take.
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    #: PostgreSQL's ``statement_timeout`` for verifyd's sessions; 0 turns it off.
    db_statement_timeout_ms: int = Field(default=5000, ge=0, le=3_600_000)
    #: On SIGTERM: how long in-flight requests and deliveries may take to finish.
    shutdown_grace_seconds: float = Field(default=20.0, gt=0, le=3600)
    secret_key: SecretStr | None = None
    #: Sandbox destinations and ``/v1/sandbox``; on by default in development only.
    sandbox: bool | None = None
    sandbox_fixed_code: str | None = None
    #: Extra sandbox destinations: regular expressions matched against E.164 / lower-cased email.
    sandbox_patterns: CommaList = Field(default_factory=list)

    public_base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    #: One line per request on ``verifyd.access`` (method, path without query, status, time).
    access_log: bool = True
    #: ``/docs``, ``/redoc`` and ``/openapi.json``; on by default in development only.
    api_docs: bool | None = None
    #: Allowed ``redirect_url`` prefixes: an origin (``https://app.example``) or origin + path.
    redirect_allowlist: CommaList = Field(default_factory=list)

    #: The Twilio Verify-compatible API under ``/v2`` (verify-scoped keys only).
    twilio_compat: bool = True

    phone_channel: str = "sms"
    email_channel: str = "email"
    #: Providers in order of preference: ``twilio,webhook`` fails over to ``webhook``.
    sms_provider: CommaList = Field(default_factory=lambda: ["console"])
    email_provider: CommaList = Field(default_factory=lambda: ["console"])
    #: ``inprocess``: ``verifyd serve`` delivers; ``off``: a ``verifyd worker`` does.
    dispatcher: Literal["inprocess", "off"] = "inprocess"
    #: Tries per provider before a message fails over to the next one (or dies).
    delivery_max_attempts: int = Field(default=6, ge=1, le=50)
    #: Full-jitter exponential backoff: a retry waits up to base * 2**(attempt-1), capped.
    delivery_backoff_base_seconds: float = Field(default=2.0, gt=0)
    delivery_backoff_cap_seconds: float = Field(default=300.0, gt=0)
    #: How long a worker holds a claimed message; longer than any provider call.
    delivery_lease_seconds: float = Field(default=60.0, gt=0)
    #: Provider calls one process has in flight at once; the rest of a claim waits its turn.
    delivery_concurrency: int = Field(default=20, ge=1, le=1000)

    #: The name messages and pages sign with.
    app_name: str = "verifyd"
    #: A folder of Jinja2 templates that override the shipped ones, file by file.
    template_dir: Path | None = None

    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    #: ``noreply@example.com`` or ``Example <noreply@example.com>``.
    smtp_from: str | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Extra CA certificates (PEM) to trust for the SMTP server's TLS, beside the system's.
    smtp_ca_file: Path | None = None

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    #: The API root; the provider appends ``/2010-04-01/Accounts/{sid}/Messages.json``.
    twilio_base_url: str = "https://api.twilio.com"
    twilio_timeout_seconds: float = Field(default=10.0, gt=0)

    webhook_url: str | None = None
    #: Standard Webhooks secret, ``whsec_<base64>``.
    webhook_secret: SecretStr | None = None
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)

    # Policy defaults: what a PUT that omits a knob gets, and the first policy version.
    policy_mode: Literal["phone", "email", "either", "both", "split"] = "phone"
    policy_prefer: Literal["phone", "email"] = "email"
    sms_code_length: int = Field(default=4, ge=4, le=10)
    sms_ttl_seconds: int = Field(default=600, ge=30, le=86400)
    sms_max_checks: int = Field(default=5, ge=1, le=20)
    sms_resend_cooldown_seconds: int = Field(default=30, ge=0, le=3600)
    email_ttl_seconds: int = Field(default=86400, ge=60, le=7 * 86400)

    # Abuse limits, kept in the database so every worker shares them. Per destination:
    # a rolling window, ``N`` free events, then waits doubling from a base to a cap
    # (``verifyd.slidinglimit``); per address: fixed windows.
    guess_budget_per_day: int = Field(default=10, ge=1)
    #: 300 s doubling to 4 h: 10 more guesses in any 24 h (20 in all), no wait over 4 h.
    guess_backoff_base_seconds: int = Field(default=300, ge=1, le=86400)
    guess_backoff_cap_seconds: int = Field(default=14400, ge=1, le=86400)
    sends_per_destination_per_hour: int = Field(default=5, ge=1)
    #: 60 s doubling to 15 min: 6 more sends in any hour (11 in all), no wait over 15 min.
    send_backoff_base_seconds: int = Field(default=60, ge=1, le=3600)
    send_backoff_cap_seconds: int = Field(default=900, ge=1, le=3600)
    signups_per_ip_per_hour: int = Field(default=60, ge=1)
    checks_per_ip_per_minute: int = Field(default=120, ge=1)
    #: Sandbox destinations have their own, looser bucket so load tests measure the flow.
    sandbox_limit_multiplier: int = Field(default=1000, ge=1)

    blocked_number_types: CommaList = Field(
        default_factory=lambda: list(DEFAULT_BLOCKED_NUMBER_TYPES)
    )
    #: phonenumbers regions refused outright (``number_type_blocked``); ``001`` is satellite.
    blocked_regions: CommaList = Field(default_factory=lambda: list(DEFAULT_BLOCKED_REGIONS))
    #: ISO 3166 region codes allowed for phone numbers; empty means all.
    allowed_countries: CommaList = Field(default_factory=list)
    #: Region used to read numbers written without ``+``; empty means E.164 is required.
    default_region: str | None = None

    #: Suspect signals that refuse the signup instead of flagging it (all flag by default).
    blocked_signals: CommaList = Field(default_factory=list)
    #: More disposable email domains, one per line, beside the packaged list.
    disposable_domains_file: Path | None = None
    #: Velocity: this many signups from one IP, or one number prefix, in the window flag.
    velocity_window_seconds: int = Field(default=600, ge=10, le=86400)
    velocity_ip_signups: int = Field(default=10, ge=2)
    velocity_prefix_signups: int = Field(default=10, ge=2)
    #: Numbers that differ only in their last N digits share a prefix.
    velocity_prefix_tail_digits: int = Field(default=3, ge=1, le=6)

    # SMS pumping (flows/pumping.py): send budgets, fixed windows in the database.
    #: A number's prefix for the budget and the breaker: E.164 without its last N digits.
    sms_prefix_tail_digits: int = Field(default=3, ge=1, le=6)
    sms_budget_per_prefix_per_hour: int = Field(default=20, ge=1)
    sms_budget_per_country_per_hour: int = Field(default=500, ge=1)
    sms_budget_per_day: int = Field(default=10_000, ge=1)
    #: The conversion breaker, looked at when a budget refuses a send: a prefix (country)
    #: that sent more than N codes in the window, under the verified percentage, is held.
    sms_breaker_min_sends: int = Field(default=10, ge=1)
    sms_breaker_country_min_sends: int = Field(default=100, ge=1)
    sms_breaker_min_verified_percent: float = Field(default=20.0, ge=0, le=100)
    sms_breaker_window_seconds: int = Field(default=3600, ge=60, le=7 * 86400)
    sms_breaker_hold_seconds: int = Field(default=86400, ge=1, le=30 * 86400)

    #: Prices per message, JSON (see docs/stats.md); ``VERIFYD_PRICES_FILE`` reads it from a file.
    prices: str | None = None
    prices_file: Path | None = None

    #: ``text`` (one readable line) or ``json`` (one object per line, with the request id).
    log_format: Literal["text", "json"] = "text"
    #: When set, ``GET /metrics`` wants ``Authorization: Bearer <token>``.
    metrics_token: SecretStr | None = None

    #: The dashboard: how long a login lasts, and login attempts per address per 15 min.
    admin_session_seconds: int = Field(default=8 * 3600, ge=60, le=30 * 86400)
    admin_login_attempts_per_ip: int = Field(default=10, ge=1)

    policy_cache_seconds: float = Field(default=1.0, ge=0)
    dispatch_interval_seconds: float = Field(default=0.5, gt=0)
    #: Trust ``X-Forwarded-For`` from these proxy addresses or networks (verifyd.proxies).
    trusted_proxies: CommaList = Field(default_factory=list)

    # Bodies and connections (verifyd.api.bodylimit, verifyd.headertimeout).
    #: A request body over this many bytes is refused (413) before or while it is read.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024)
    #: Seconds a connection gets, from its opening or its last answer, to send a request head.
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    #: Seconds a request gets, from its head, to send its whole body.
    body_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    #: Seconds an idle kept-alive connection stays open (uvicorn's ``timeout_keep_alive``).
    keep_alive_seconds: int = Field(default=5, ge=1, le=3600)

    @field_validator(
        "sms_provider",
        "email_provider",
        "sandbox_patterns",
        "redirect_allowlist",
        "blocked_number_types",
        "blocked_regions",
        "allowed_countries",
        "trusted_proxies",
        "blocked_signals",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: list[str]) -> list[str]:
        proxies.parse(value)  # raises ValueError naming the entry
        return value

    @field_validator("blocked_number_types", "blocked_regions", "allowed_countries")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [v.upper() for v in value]

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        if self.sandbox is None:
            self.sandbox = self.env == "development"
        if self.api_docs is None:
            self.api_docs = self.env == "development"
        for setting, chain in (("SMS", self.sms_provider), ("EMAIL", self.email_provider)):
            if not chain:
                raise ValueError(f"VERIFYD_{setting}_PROVIDER names no provider")
            if len(set(chain)) != len(chain):
                raise ValueError(f"VERIFYD_{setting}_PROVIDER names a provider twice")
        unknown = sorted(set(self.blocked_signals) - set(SIGNALS))
        if unknown:
            raise ValueError(
                f"VERIFYD_BLOCKED_SIGNALS: unknown signal {', '.join(unknown)}"
                f" (known: {', '.join(SIGNALS)})"
            )
        if self.prices is not None and self.prices_file is not None:
            raise ValueError("set VERIFYD_PRICES or VERIFYD_PRICES_FILE, not both")
        self.public_base_url = self.public_base_url.rstrip("/")
        if self.sandbox_fixed_code is not None and not (
            self.sandbox_fixed_code.isdigit()
            and len(self.sandbox_fixed_code) == self.sms_code_length
        ):
            raise ValueError("VERIFYD_SANDBOX_FIXED_CODE must be sms_code_length digits")
        return self

    @property
    def production(self) -> bool:
        """True when ``VERIFYD_ENV=production``."""
        return self.env == "production"

    @property
    def sandbox_on(self) -> bool:
        """Whether sandbox destinations and the sandbox API are live."""
        return bool(self.sandbox)

    def resolve_secret(self) -> bytes:
        """The server secret: the setting, or in development one kept beside the database.

        Returns:
            The key bytes used for every keyed hash.

        Raises:
            ConfigurationError: production without ``VERIFYD_SECRET_KEY``.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        if self.production:
            raise ConfigurationError("VERIFYD_SECRET_KEY is required in production")
        try:
            return devsecret.read_or_create(self.secret_file())
        except devsecret.SecretFileError as exc:
            raise ConfigurationError(str(exc)) from exc

    def secret_file(self) -> Path | None:
        """Where a development secret is kept: beside a SQLite file, else under ``var/``."""
        return devsecret.location(self.database_url)
