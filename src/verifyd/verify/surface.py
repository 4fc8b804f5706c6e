"""The ``/v2`` surface's parts, wired once per process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from verifyd import texts
from verifyd.channels.base import Channel
from verifyd.db import Database
from verifyd.destinations import Destinations
from verifyd.flows.delivery import Delivery
from verifyd.flows.limits import Limits
from verifyd.flows.pumping import Pumping
from verifyd.policystore import PolicyStore
from verifyd.settings import Settings
from verifyd.verify.checks import Checks
from verifyd.verify.services import Services
from verifyd.verify.starts import Starts
from verifyd.verify.views import Urls


@dataclass(frozen=True)
class Surface:
    """Services, starts and checks of the Twilio-compatible API."""

    services: Services
    starts: Starts
    checks: Checks

    @classmethod
    def build(
        cls,
        settings: Settings,
        db: Database,
        channels: dict[str, Channel],
        policies: PolicyStore,
        limits: Limits,
        delivery: Delivery,
        pumping: Pumping,
        wake: Callable[[], None],
    ) -> Surface:
        """Wire the surface from the runtime's shared parts."""
        urls = Urls(settings.public_base_url)
        services = Services(db, urls)
        starts = Starts(
            lambda: texts.shared(settings.template_dir).locales,
            Destinations(settings),
            db,
            services,
            channels,
            policies,
            limits,
            delivery,
            pumping,
            urls,
            wake,
        )
        checks = Checks(db, services, starts, channels, limits, pumping, urls)
        return cls(services, starts, checks)
