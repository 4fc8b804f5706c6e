"""Plugins by short name, from the ``verifyd.channels`` and ``verifyd.providers`` entry points."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from verifyd.channels.base import Channel
from verifyd.providers.base import Provider

CHANNELS_GROUP = "verifyd.channels"
PROVIDERS_GROUP = "verifyd.providers"


class RegistryError(Exception):
    """The plugins cannot be resolved: a name clash, a missing name, a wrong class."""


def _dist_name(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "<unknown distribution>"


def _load_group(group: str, base: type[Any]) -> dict[str, Any]:
    # EntryPoint equality ignores the distribution: two distributions declaring the
    # same name and target would compare equal, so they are told apart by owner.
    by_name: dict[str, dict[tuple[str, str], EntryPoint]] = defaultdict(dict)
    for found in entry_points(group=group):
        by_name[found.name].setdefault((_dist_name(found), found.value), found)
    loaded: dict[str, Any] = {}
    for name, declared in sorted(by_name.items()):
        eps = list(declared.values())
        if len(eps) > 1:
            owners = " and ".join(f"{_dist_name(ep)} ({ep.value})" for ep in eps)
            raise RegistryError(f"{group} name {name!r} is declared by {owners}")
        cls = eps[0].load()
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise RegistryError(f"{group} {name!r} ({eps[0].value}) is not a {base.__name__}")
        loaded[name] = cls
    return loaded


@dataclass(frozen=True)
class Registry:
    """The channel and provider classes, by entry-point name, resolved once."""

    channels: dict[str, type[Channel]]
    providers: dict[str, type[Provider]]

    @classmethod
    def from_entry_points(cls) -> Registry:
        """Build the registry from the installed distributions' entry points.

        Raises:
            RegistryError: two distributions declare one name, or a plugin is not a
                ``Channel``/``Provider``.
        """
        return cls(
            channels=_load_group(CHANNELS_GROUP, Channel),
            providers=_load_group(PROVIDERS_GROUP, Provider),
        )

    def channel(self, name: str) -> type[Channel]:
        """The channel class called ``name``."""
        try:
            return self.channels[name]
        except KeyError:
            known = ", ".join(sorted(self.channels)) or "none"
            raise RegistryError(f"no channel named {name!r} (installed: {known})") from None

    def provider(self, name: str) -> type[Provider]:
        """The provider class called ``name``."""
        try:
            return self.providers[name]
        except KeyError:
            known = ", ".join(sorted(self.providers)) or "none"
            raise RegistryError(f"no provider named {name!r} (installed: {known})") from None
