"""Build the parts of a running verifyd from its settings (used by the app and the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from verifyd import floors
from verifyd.adminkeys import AdminKeys
from verifyd.adminsessions import AdminSessions
from verifyd.channels.base import Channel
from verifyd.codes import Secrets
from verifyd.db import Database
from verifyd.destinations import Destinations
from verifyd.disposable import DisposableDomains
from verifyd.flows.check import Codes
from verifyd.flows.confirm import Links
from verifyd.flows.delivery import SANDBOX_PROVIDER, Delivery
from verifyd.flows.exposure import Exposures
from verifyd.flows.labels import Labels
from verifyd.flows.limits import Limits
from verifyd.flows.lookup import Lookup
from verifyd.flows.messages import Messages
from verifyd.flows.pumping import Pumping
from verifyd.flows.sandbox import SandboxInbox
from verifyd.flows.signals import Signals
from verifyd.flows.signup import Signup
from verifyd.flows.stats import Stats
from verifyd.idempotency import IdempotencyStore
from verifyd.outbox import Dispatcher
from verifyd.policystore import PolicyStore
from verifyd.pricing import Prices
from verifyd.providers.base import Provider
from verifyd.proxies import TrustedProxies
from verifyd.registry import Registry, RegistryError
from verifyd.retry import Backoff
from verifyd.settings import ConfigurationError, Settings
from verifyd.verify.surface import Surface


@dataclass
class Runtime:
    """Everything a worker holds; one per process."""

    settings: Settings
    db: Database
    registry: Registry
    channels: dict[str, Channel]
    providers: dict[str, Provider]
    policies: PolicyStore
    signup: Signup
    codes: Codes
    links: Links
    lookup: Lookup
    sandbox: SandboxInbox
    dispatcher: Dispatcher
    messages: Messages
    admin_keys: AdminKeys
    sessions: AdminSessions
    idempotency: IdempotencyStore
    exposures: Exposures
    stats: Stats
    labels: Labels
    pumping: Pumping
    proxies: TrustedProxies
    #: The Twilio-compatible ``/v2`` surface.
    verify: Surface


def _providers(
    settings: Settings, registry: Registry, channels: dict[str, Channel]
) -> dict[str, Provider]:
    chains = {"sms": settings.sms_provider, "email": settings.email_provider}
    classes: dict[str, type[Provider]] = {}
    problems: list[str] = []
    for kind, chain in chains.items():
        setting = f"VERIFYD_{kind.upper()}_PROVIDER"
        for name in chain:
            try:
                cls = registry.provider(name)
            except RegistryError as exc:
                raise RegistryError(f"{exc} ({setting})") from None
            if kind not in cls.kinds:
                carried = ", ".join(sorted(cls.kinds))
                raise ConfigurationError(
                    f"provider {name!r} carries {carried}, not {kind} ({setting})"
                )
            if settings.production and cls.development_only:
                raise ConfigurationError(
                    f"provider {name!r} is refused in production mode ({setting})"
                )
            if name not in classes:
                classes[name] = cls
                problems.extend(f"provider {name!r}: {p}" for p in cls.check_settings(settings))
    if problems:
        raise ConfigurationError("; ".join(problems))
    # Building a provider opens nothing (clients are opened on the first send), so the
    # instances ``verifyd serve``'s pre-check builds and drops cost nothing.
    providers = {name: cls(settings) for name, cls in classes.items()}
    if settings.sandbox_on:
        providers.setdefault(SANDBOX_PROVIDER, registry.provider(SANDBOX_PROVIDER)(settings))
    return providers


@dataclass(frozen=True)
class Plugins:
    """The plugin instances a configuration resolves to, checked and ready to wire."""

    registry: Registry
    secrets: Secrets
    channels: dict[str, Channel]
    providers: dict[str, Provider]


def check_configuration(settings: Settings, registry: Registry | None = None) -> Plugins:
    """Check everything the settings ask for without touching the database.

    ``verifyd serve`` calls it before it prints its banner, so a configuration that
    cannot run fails first; ``build_runtime`` calls it too.

    Args:
        settings: The settings to run with.
        registry: The plugins; by default read from the installed entry points.

    Raises:
        ConfigurationError: a setting the service cannot run with.
        RegistryError: a plugin name clash or a missing plugin.
    """
    floors.check(settings)
    Prices.from_settings(settings)
    DisposableDomains(settings)
    registry = registry or Registry.from_entry_points()
    secrets = Secrets(settings.resolve_secret())
    channels = {name: cls(settings, secrets) for name, cls in registry.channels.items()}
    for identity, name in (("phone", settings.phone_channel), ("email", settings.email_channel)):
        channel = channels.get(name)
        if channel is None:
            known = ", ".join(sorted(channels)) or "none"
            setting = f"VERIFYD_{identity.upper()}_CHANNEL"
            raise RegistryError(f"no channel named {name!r} (installed: {known}) ({setting})")
        if channel.identity != identity:
            raise ConfigurationError(
                f"channel {name!r} verifies {channel.identity}, not {identity} "
                f"(VERIFYD_{identity.upper()}_CHANNEL)"
            )
    providers = _providers(settings, registry, channels)
    return Plugins(registry, secrets, channels, providers)


def build_runtime(settings: Settings, registry: Registry | None = None) -> Runtime:
    """Wire settings, database, plugins and flows together.

    Args:
        settings: The settings to run with.
        registry: The plugins; by default read from the installed entry points.

    Raises:
        ConfigurationError: a setting the service cannot run with.
        RegistryError: a plugin name clash or a missing plugin.
    """
    plugins = check_configuration(settings, registry)
    channels, providers = plugins.channels, plugins.providers
    db = Database.from_settings(settings)
    policies = PolicyStore(db, settings)
    chains = {"sms": settings.sms_provider, "email": settings.email_provider}
    dispatcher = Dispatcher(
        db,
        channels,
        providers,
        chains=chains,
        backoff=Backoff.from_settings(settings),
        lease=settings.delivery_lease_seconds,
        interval=settings.dispatch_interval_seconds,
        concurrency=settings.delivery_concurrency,
    )
    limits = Limits(settings)
    delivery = Delivery(settings, providers)
    wake = dispatcher.wake
    exposures = Exposures(db, plugins.secrets)
    admin_keys = AdminKeys(db)
    pumping = Pumping(settings, db)
    return Runtime(
        settings=settings,
        db=db,
        registry=plugins.registry,
        channels=channels,
        providers=providers,
        policies=policies,
        signup=Signup(
            settings,
            db,
            plugins.secrets,
            channels,
            policies,
            limits,
            delivery,
            Signals(settings, plugins.secrets),
            exposures,
            pumping,
            wake=wake,
        ),
        exposures=exposures,
        stats=Stats(db, Prices.from_settings(settings)),
        labels=Labels(db),
        codes=Codes(db, channels, policies, limits, delivery, pumping, wake=wake),
        links=Links(db, channels),
        lookup=Lookup(db),
        sandbox=SandboxInbox(db, Destinations(settings)),
        dispatcher=dispatcher,
        messages=Messages(db, chains, wake=wake),
        admin_keys=admin_keys,
        sessions=AdminSessions(db, admin_keys, settings),
        idempotency=IdempotencyStore(db),
        pumping=pumping,
        proxies=TrustedProxies(settings.trusted_proxies),
        verify=Surface.build(settings, db, channels, policies, limits, delivery, pumping, wake),
    )
