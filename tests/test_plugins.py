"""Plugins come from entry points alone: the built-ins, a third party's channel and provider."""

from __future__ import annotations

import importlib
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from importlib.metadata import distribution, entry_points
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from support.api import sandbox_messages, signup
from verifyd.app import create_app
from verifyd.channels.base import Channel
from verifyd.providers.base import Provider
from verifyd.registry import CHANNELS_GROUP, PROVIDERS_GROUP, Registry, RegistryError
from verifyd.settings import ConfigurationError, Settings

PLUGIN = Path(__file__).parent / "plugins" / "verifyd_voice.py"
MODULE = PLUGIN.stem
BUILTIN_CHANNELS = {"sms", "email", "email_code"}
BUILTIN_PROVIDERS = {"console", "sandbox"}
SECRET = "plugin-test-secret-key-long-enough-0123456789"

Install = Callable[[str, dict[str, dict[str, str]]], None]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """Install fake distributions as pip would: ``*.dist-info`` + module on ``sys.path``.

    Everything is undone afterwards, so no other test sees the fake distributions.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    shutil.copy(PLUGIN, site / PLUGIN.name)
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    monkeypatch.syspath_prepend(str(site))

    def install_dist(name: str, declared: dict[str, dict[str, str]]) -> None:
        info = site / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8"
        )
        sections = [
            f"[{group}]\n" + "".join(f"{ep} = {target}\n" for ep, target in eps.items())
            for group, eps in declared.items()
        ]
        (info / "entry_points.txt").write_text("\n".join(sections), encoding="utf-8")
        (info / "RECORD").write_text("", encoding="utf-8")
        importlib.invalidate_caches()

    yield install_dist

    sys.path[:] = [p for p in sys.path if p != str(site)]
    sys.modules.pop(MODULE, None)
    importlib.invalidate_caches()
    for group in (CHANNELS_GROUP, PROVIDERS_GROUP):
        leaked = {ep.dist.name for ep in entry_points(group=group) if ep.dist is not None}
        assert leaked == {"verifyd"}, f"fake distributions still visible: {leaked}"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for start-up checks that fail before any database is opened."""
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'never.db'}",
        "secret_key": SECRET,
        "sandbox": True,
    }
    values.update(overrides)
    return Settings(**values)


def _wait_delivered(client: TestClient, verification_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        view: dict[str, Any] = client.get(f"/v1/verifications/{verification_id}").json()
        if view["delivery"] != "queued" or time.monotonic() > deadline:
            return view
        time.sleep(0.02)


def test_builtins_are_declared_by_verifyds_own_entry_points() -> None:
    registry = Registry.from_entry_points()
    assert BUILTIN_CHANNELS <= set(registry.channels)
    assert BUILTIN_PROVIDERS <= set(registry.providers)

    declared = {(ep.group, ep.name): ep for ep in distribution("verifyd").entry_points}
    for group, names, loaded in (
        (CHANNELS_GROUP, BUILTIN_CHANNELS, registry.channels),
        (PROVIDERS_GROUP, BUILTIN_PROVIDERS, registry.providers),
    ):
        for name in names:
            assert (group, name) in declared, f"{group}:{name} not in verifyd's metadata"
            assert declared[(group, name)].load() is loaded[name]
        owners = {ep.name: ep.dist.name for ep in entry_points(group=group) if ep.dist}
        assert all(owners[name] == "verifyd" for name in names), owners

    assert all(issubclass(cls, Channel) for cls in registry.channels.values())
    assert all(issubclass(cls, Provider) for cls in registry.providers.values())


def test_third_party_voice_channel_end_to_end(
    install: Install,
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
) -> None:
    install("acme-voice", {CHANNELS_GROUP: {"voice": f"{MODULE}:VoiceChannel"}})
    (ep,) = [ep for ep in entry_points(group=CHANNELS_GROUP) if ep.name == "voice"]
    assert ep.dist is not None and ep.dist.name == "acme-voice"

    # create_app reads the registry from the installed entry points by itself.
    client = make_client(make_settings(phone_channel="voice"))
    created = signup(client, phone="+1 202 555 0177")
    (ver,) = created["verifications"]
    assert ver["channel"] == "voice"
    assert ver["status"] == "pending"
    assert ver["delivery"] == "sent"  # the sandbox provider delivers in the transaction

    (message,) = sandbox_messages(client, "+12025550177")
    plugin = sys.modules[MODULE]
    code = message["code"]
    assert message["channel"] == "voice"
    assert len(code) == plugin.VOICE_CODE_LENGTH and code.isdigit()
    assert message["body"].startswith(plugin.VOICE_GREETING)
    assert " ".join(code) in message["body"]

    r = client.post(f"/v1/verifications/{ver['id']}/check", json={"code": code})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"
    assert r.json()["verification"]["channel"] == "voice"
    account = client.get(f"/v1/accounts/{created['account']['id']}").json()
    assert account["status"] == "active"
    assert account["verified"] == {"phone": True, "email": False}


def test_third_party_provider_delivers_the_kind_it_declares(
    install: Install,
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
) -> None:
    install("acme-pigeon", {PROVIDERS_GROUP: {"pigeon": f"{MODULE}:PigeonProvider"}})
    client = make_client(make_settings(sms_provider="pigeon"))
    created = signup(client, phone="+1 415 555 2671")  # a real number: through the outbox
    (ver,) = created["verifications"]
    assert ver["delivery"] == "queued"

    assert _wait_delivered(client, ver["id"])["delivery"] == "sent"
    (sent,) = sys.modules[MODULE].PigeonProvider.SENT
    assert (sent.kind, sent.to, sent.channel) == ("sms", "+14155552671", "sms")
    assert sent.code is not None and sent.code in sent.body
    r = client.post(f"/v1/verifications/{ver['id']}/check", json={"code": sent.code})
    assert r.status_code == 200, r.text
    assert r.json()["account"]["status"] == "active"


def test_provider_selected_for_a_kind_it_does_not_carry_is_refused(
    install: Install, tmp_path: Path
) -> None:
    install("acme-pigeon", {PROVIDERS_GROUP: {"pigeon": f"{MODULE}:PigeonProvider"}})
    with pytest.raises(ConfigurationError) as err:
        create_app(_settings(tmp_path, email_provider="pigeon"))
    assert "pigeon" in str(err.value) and "email" in str(err.value)


@pytest.mark.parametrize(
    ("others", "named"),
    [
        pytest.param(
            [("rival-voice", "voice")], {"acme-voice", "rival-voice"}, id="two-third-parties"
        ),
        pytest.param([("acme-sms", "sms")], {"verifyd", "acme-sms"}, id="against-a-builtin"),
    ],
)
def test_two_distributions_declaring_one_name_fail_start_up(
    install: Install, tmp_path: Path, others: list[tuple[str, str]], named: set[str]
) -> None:
    install("acme-voice", {CHANNELS_GROUP: {"voice": f"{MODULE}:VoiceChannel"}})
    for dist, name in others:
        install(dist, {CHANNELS_GROUP: {name: f"{MODULE}:VoiceChannel"}})
    with pytest.raises(RegistryError) as err:
        Registry.from_entry_points()
    for dist in named:
        assert dist in str(err.value)
    with pytest.raises(RegistryError) as err:
        create_app(_settings(tmp_path))
    for dist in named:
        assert dist in str(err.value)


@pytest.mark.parametrize(
    ("group", "name", "target", "base"),
    [
        (CHANNELS_GROUP, "broken", "NotAChannel", "Channel"),
        (PROVIDERS_GROUP, "backwards", "VoiceChannel", "Provider"),
    ],
)
def test_a_plugin_of_the_wrong_class_is_refused(
    install: Install, group: str, name: str, target: str, base: str
) -> None:
    install("careless", {group: {name: f"{MODULE}:{target}"}})
    with pytest.raises(RegistryError) as err:
        Registry.from_entry_points()
    assert name in str(err.value) and base in str(err.value)


def test_selecting_a_channel_nobody_installed_names_the_installed_ones(tmp_path: Path) -> None:
    with pytest.raises(RegistryError) as err:
        create_app(_settings(tmp_path, phone_channel="fax"))
    assert "fax" in str(err.value)
    assert all(name in str(err.value) for name in BUILTIN_CHANNELS)


def test_a_channel_selected_for_the_wrong_identity_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as err:
        create_app(_settings(tmp_path, phone_channel="email"))
    assert "email" in str(err.value) and "phone" in str(err.value)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("sms_provider", "mailjet"),
        ("email_provider", "mailgun"),
        ("phone_channel", "fax"),
        ("email_channel", "pigeon"),
    ],
)
def test_an_unknown_plugin_name_says_which_setting_named_it(
    tmp_path: Path, setting: str, value: str
) -> None:
    with pytest.raises(RegistryError) as err:
        create_app(_settings(tmp_path, **{setting: value}))
    assert repr(value) in str(err.value)
    assert f"(VERIFYD_{setting.upper()})" in str(err.value)
