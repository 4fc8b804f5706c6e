"""deploy/: every manifest parses, and every setting, command, port and probe it uses is real.

There is no container engine or cluster here. So the manifests are read with PyYAML
and held against the code: setting names against :class:`Settings`, commands against
the CLI's own argparse grammar, probe paths against the app's routes (and answered
over HTTP), ports against the ``--port`` the command passes, grace periods against the
shutdown settings the manifests set, and the settings themselves against production's
start-up checks. Each check is a function returning problems, and a test feeds each a
broken copy to show it would catch the typo. The last test runs the manifests'
commands with their settings against a throwaway PostgreSQL.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from support.net import free_port, get
from support.postgres import PostgresServer
from test_cli import VERIFYD
from verifyd import cli, floors, migrate
from verifyd.app import create_app
from verifyd.db import Database
from verifyd.runtime import check_configuration
from verifyd.settings import ConfigurationError, Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "verifyd.env.example"
PLACEHOLDER = "REPLACE_ME"
#: What production generates with ``openssl rand -hex 32``, for the filled-in examples.
SECRET = "5b0c1f4e3a2d8e7f6a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f"
#: Environment names the manifests may set that are not verifyd settings, and why.
NOT_SETTINGS = {
    "POSTGRES_USER": "the postgres image's",
    "POSTGRES_DB": "the postgres image's",
    "POSTGRES_PASSWORD": "the postgres image's, and the compose file's own variable",
}
SECRET_LOOKING = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY|ACCOUNT_SID|DATABASE_URL")
SETTING = re.compile(r"\bVERIFYD_[A-Z0-9_]+")
DURATION = re.compile(r"(?:(\d+)m)?(?:(\d+)s)?")


@dataclass
class Container:
    """One process a manifest starts, as far as verifyd is concerned."""

    source: str
    argv: list[str]
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)  # name (or number) -> container port
    probes: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, path, port)
    grace: float = 30.0  # seconds between SIGTERM and SIGKILL
    pre_stop: float = 0.0  # seconds a preStop hook holds the SIGTERM back
    healthcheck_disabled: bool = False

    @property
    def command(self) -> str:
        return self.argv[1] if self.argv[:1] == ["verifyd"] and len(self.argv) > 1 else ""

    def flag(self, name: str) -> str | None:
        return self.argv[self.argv.index(name) + 1] if name in self.argv else None


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines as docker compose reads them (comments and blanks skipped)."""
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{path.name}: not NAME=value: {line!r}"
            env[name.strip()] = value
    return env


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${NAME}`` / ``${NAME:?message}`` / ``${NAME:-default}``."""

    def one(m: re.Match[str]) -> str:
        return variables[m.group(1)]

    return re.sub(r"\$\{(\w+)(?::?[-?][^}]*)?\}", one, value)


def seconds(value: str | int) -> float:
    if isinstance(value, int):
        return float(value)
    m = DURATION.fullmatch(value)
    assert m and value, f"not a duration: {value!r}"
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


# --- reading the manifests ----------------------------------------------------------------


def compose_containers(
    compose: dict[str, Any], env_example: dict[str, str], password: str = "pw"
) -> dict[str, Container]:
    found = {}
    for name, service in compose["services"].items():
        if "postgres" in str(service.get("image", "")):
            continue
        env = {} if "env_file" not in service else dict(env_example)
        env |= {
            k: interpolate(str(v), {"POSTGRES_PASSWORD": password})
            for k, v in service.get("environment", {}).items()
        }
        c = Container(f"compose:{name}", list(service["command"]), env)
        for mapping in service.get("ports", []):
            port = int(str(mapping).rsplit(":", 1)[-1])
            c.ports[str(port)] = port
        check = service.get("healthcheck", {})
        c.healthcheck_disabled = check.get("disable") is True
        for url in re.findall(
            r"http://127\.0\.0\.1:\d+/\S*?(?=['\"])", " ".join(check.get("test", []))
        ):
            port, _, path = url.removeprefix("http://127.0.0.1:").partition("/")
            c.probes.append(("healthcheck", "/" + path, port))
        if "stop_grace_period" in service:
            c.grace = seconds(service["stop_grace_period"])
        else:
            c.grace = 10.0  # docker's default
        found[name] = c
    return found


def kube_objects() -> dict[tuple[str, str], dict[str, Any]]:
    objects = {}
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in docs(path):
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def kube_containers(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Container]:
    found = {}
    for (kind, name), obj in objects.items():
        if kind not in ("Deployment", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        for spec in pod["containers"]:
            env: dict[str, str] = {}
            for source in spec.get("envFrom", []):
                if "configMapRef" in source:
                    env |= objects[("ConfigMap", source["configMapRef"]["name"])]["data"]
                if "secretRef" in source:
                    env |= objects[("Secret", source["secretRef"]["name"])]["stringData"]
            env |= {e["name"]: e["value"] for e in spec.get("env", [])}
            c = Container(f"{kind}/{name}", [*spec.get("command", []), *spec.get("args", [])], env)
            for port in spec.get("ports", []):
                c.ports[port.get("name", str(port["containerPort"]))] = port["containerPort"]
                c.ports[str(port["containerPort"])] = port["containerPort"]
            for kind_ in ("startupProbe", "livenessProbe", "readinessProbe"):
                if kind_ in spec:
                    get_ = spec[kind_]["httpGet"]
                    c.probes.append((kind_, get_["path"], str(get_["port"])))
            c.grace = float(pod.get("terminationGracePeriodSeconds", 30))
            hook = spec.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
            if hook:
                assert hook[0] == "sleep", hook
                c.pre_stop = float(hook[1])
            found[f"{kind}/{name}"] = c
    return found


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    [doc] = docs(COMPOSE)
    return doc


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    return kube_objects()


@pytest.fixture(scope="module")
def containers(compose: dict[str, Any], objects: dict[Any, Any]) -> list[Container]:
    return [
        *compose_containers(compose, env_file(ENV_EXAMPLE)).values(),
        *kube_containers(objects).values(),
    ]


# --- the checks -----------------------------------------------------------------------------


def unknown_names(text: str) -> list[str]:
    """``VERIFYD_*`` names in ``text`` (comments included) that no setting reads."""
    names = set(SETTING.findall(text))
    return sorted(
        n for n in names if n.removeprefix("VERIFYD_").lower() not in Settings.model_fields
    )


def command_problems(argv: list[str]) -> list[str]:
    """Why ``argv`` is not a command verifyd's CLI accepts (its argparse grammar decides)."""
    if argv[:1] != ["verifyd"]:
        return [f"not the verifyd console script: {argv}"]
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            cli.parser().parse_args(argv[1:])
    except SystemExit:
        return [f"verifyd's CLI refuses {argv[1:]}"]
    return []


def served_paths() -> set[str]:
    """The paths the app answers ``GET`` on (its routes, as its OpenAPI document lists them)."""
    paths = create_app(Settings()).openapi()["paths"]
    return {path for path, operations in paths.items() if "get" in operations}


def probe_problems(c: Container, paths: set[str]) -> list[str]:
    problems = []
    for kind, path, port in c.probes:
        if path not in paths:
            problems.append(f"{c.source} {kind}: verifyd serves no {path}")
        if port not in c.ports and port != c.flag("--port"):
            problems.append(f"{c.source} {kind}: port {port} is no port of the container")
    if c.command == "serve":
        if c.ports and set(c.ports.values()) != {int(c.flag("--port") or 0)}:
            problems.append(f"{c.source}: ports {c.ports} but --port {c.flag('--port')}")
        if c.flag("--host") != "0.0.0.0":
            problems.append(f"{c.source}: --host {c.flag('--host')} is unreachable from outside")
    elif c.probes or not (c.healthcheck_disabled or c.source.startswith(("Deployment", "Job"))):
        # The image's HEALTHCHECK asks /healthz: a process without HTTP must turn it off.
        problems.append(f"{c.source}: probes HTTP but `verifyd {c.command}` serves none")
    return problems


def grace_problems(c: Container) -> list[str]:
    """The kill must come after every wait the process is allowed on SIGTERM."""
    settings = Settings(**{k.removeprefix("VERIFYD_").lower(): v for k, v in filled(c.env).items()})
    waits = {"shutdown": settings.shutdown_grace_seconds}
    if c.command == "worker":
        waits["delivery lease"] = settings.delivery_lease_seconds
    return [
        f"{c.source}: {c.grace:g} s to stop <= {c.pre_stop:g} s preStop + {what} {wait:g} s"
        for what, wait in waits.items()
        if c.grace <= c.pre_stop + wait
    ]


def filled(env: dict[str, str], database_url: str | None = None) -> dict[str, str]:
    """The verifyd settings of a manifest with its placeholders replaced, as an operator does."""
    out = {}
    for name, value in env.items():
        if not name.startswith("VERIFYD_"):
            continue
        if name == "VERIFYD_SECRET_KEY":
            value = value.replace(PLACEHOLDER, SECRET)
        elif name == "VERIFYD_DATABASE_URL" and database_url is not None:
            value = database_url
        out[name] = value.replace(PLACEHOLDER, f"filled-{name.lower()}")
    return out


def production_problems(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What ``verifyd serve`` would refuse in these settings (read from the environment)."""
    with monkeypatch.context() as m:
        for name in [n for n in os.environ if n.startswith("VERIFYD_")]:
            m.delenv(name)
        for name, value in env.items():
            m.setenv(name, value)
        try:
            settings = Settings()
            if not settings.production:
                return ["VERIFYD_ENV is not production"]
            check_configuration(settings)
        except (ConfigurationError, ValueError) as exc:
            return [str(exc)]
    return []


# --- the tests ------------------------------------------------------------------------------


def test_every_manifest_parses_and_kustomization_lists_them(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert {f.name for f in files} >= {"compose.yaml", "kustomization.yaml", "api.yaml"}
    for path in files:
        for doc in docs(path):
            assert isinstance(doc, dict), path
            if path.parent == KUBE:
                assert doc["apiVersion"] and doc["kind"], path
                assert "namespace" not in doc.get("metadata", {}), f"{path}: namespace-agnostic"
    [kustomization] = docs(KUBE / "kustomization.yaml")
    listed = set(kustomization["resources"])
    assert all((KUBE / name).is_file() for name in listed)
    rest = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml", "migrate-job.yaml"}
    assert listed == rest, "the Job runs on its own, first; everything else is listed"
    kinds = sorted(kind for kind, _ in objects)
    assert kinds == sorted(
        ["ConfigMap", "Secret", "Job", "Deployment", "Deployment", "Service", "PodDisruptionBudget"]
    )


def test_every_setting_name_is_a_setting() -> None:
    texts = {p: p.read_text() for p in DEPLOY.rglob("*") if p.is_file()}
    assert len(texts) >= 9
    problems = {str(p.relative_to(ROOT)): unknown_names(t) for p, t in texts.items()}
    assert {p: n for p, n in problems.items() if n} == {}
    # The check reads comments too, and catches a one-letter slip.
    assert unknown_names("# VERIFYD_SHUTDOWN_GRACE_SECOND=20\nVERIFYD_SECRET_KY=x") == [
        "VERIFYD_SECRET_KY",
        "VERIFYD_SHUTDOWN_GRACE_SECOND",
    ]


def test_other_environment_names_are_listed(compose: dict[str, Any]) -> None:
    names = set(env_file(ENV_EXAMPLE))
    for service in compose["services"].values():
        names |= set(service.get("environment", {}))
    for (kind, _), obj in kube_objects().items():
        names |= set(obj.get("data", {}) if kind == "ConfigMap" else obj.get("stringData", {}))
    assert {n for n in names if not n.startswith("VERIFYD_")} <= set(NOT_SETTINGS)


def test_every_command_is_a_real_verifyd_command(containers: list[Container]) -> None:
    assert {c.command for c in containers} == {"serve", "worker", "migrate"}
    assert [p for c in containers for p in command_problems(c.argv)] == []
    for typo in (
        ["verifyd", "serve", "--hots", "0.0.0.0"],
        ["verifyd", "migrat"],
        ["verifyd", "serve", "--port", "eighty"],
        ["verifyd", "worker", "--one"],
        ["verfiyd", "worker"],
    ):
        assert command_problems(typo), typo


def test_probes_and_ports_match_what_the_app_serves(
    containers: list[Container], objects: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    paths = served_paths()
    assert [p for c in containers for p in probe_problems(c, paths)] == []
    probed = {path for c in containers for _, path, _ in c.probes}
    assert probed == {"/healthz", "/readyz"}
    kinds = {(c.source, kind) for c in containers for kind, _, _ in c.probes}
    assert ("Deployment/verifyd-api", "livenessProbe") in kinds
    assert ("Deployment/verifyd-api", "readinessProbe") in kinds
    assert ("compose:api", "healthcheck") in kinds

    # Each path answers 200 on a migrated database, as a kubelet would see it.
    url = f"sqlite:///{tmp_path}/v.db"
    db = Database(url)
    migrate.upgrade(db)
    db.dispose()
    settings = Settings(database_url=url, secret_key=SECRET, sandbox=False)
    with TestClient(create_app(settings)) as client:
        for path in sorted(probed):
            assert client.get(path).status_code == 200, path

    # The Service sends to a port of the pods it selects.
    service = objects[("Service", "verifyd-api")]["spec"]
    api = objects[("Deployment", "verifyd-api")]["spec"]["template"]
    assert service["selector"].items() <= api["metadata"]["labels"].items()
    [port] = service["ports"]
    assert str(port["targetPort"]) in kube_containers(objects)["Deployment/verifyd-api"].ports

    # A wrong path, a wrong port, a worker asked over HTTP: each is caught.
    api_c = next(c for c in containers if c.source == "Deployment/verifyd-api")
    for broken in (
        [("livenessProbe", "/healtz", "http")],
        [("readinessProbe", "/readyz", "htp")],
    ):
        assert probe_problems(replace(api_c, probes=broken), paths)
    moved = replace(api_c, argv=[*api_c.argv[:-1], "8080"])
    assert probe_problems(moved, paths)
    worker = next(c for c in containers if c.source == "compose:worker")
    assert probe_problems(replace(worker, healthcheck_disabled=False), paths)


def test_migrations_run_first(compose: dict[str, Any], objects: dict[Any, Any]) -> None:
    job = objects[("Job", "verifyd-migrate")]["spec"]
    assert job["template"]["spec"]["containers"][0]["command"] == ["verifyd", "migrate"]
    assert job["template"]["spec"]["restartPolicy"] == "Never" and job["backoffLimit"] >= 1

    services = compose["services"]
    assert services["migrate"]["command"] == ["verifyd", "migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["postgres"]["volumes"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }, name
    assert services["api"]["deploy"]["replicas"] >= 2
    assert objects[("Deployment", "verifyd-api")]["spec"]["replicas"] >= 2
    pdb = objects[("PodDisruptionBudget", "verifyd-api")]["spec"]
    assert pdb["minAvailable"] == 1
    api_labels = objects[("Deployment", "verifyd-api")]["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= api_labels.items()


def test_grace_periods_outlast_the_shutdown_they_allow(containers: list[Container]) -> None:
    long_running = [c for c in containers if c.command in ("serve", "worker")]
    assert len(long_running) == 4
    assert [p for c in long_running for p in grace_problems(c)] == []
    api = next(c for c in containers if c.source == "Deployment/verifyd-api")
    assert api.pre_stop > 0, "endpoints must drain before SIGTERM"
    worker = next(c for c in containers if c.source == "compose:worker")
    for short in (
        replace(api, grace=api.pre_stop + 20),
        replace(api, env={**api.env, "VERIFYD_SHUTDOWN_GRACE_SECONDS": "45"}),
        replace(worker, grace=60),
    ):
        assert grace_problems(short), short.source


def test_secrets_are_in_the_secret(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    secret = objects[("Secret", "verifyd-secrets")]
    config = objects[("ConfigMap", "verifyd-config")]["data"]
    assert {"VERIFYD_SECRET_KEY", "VERIFYD_DATABASE_URL"} <= set(secret["stringData"])
    assert [n for n in config if SECRET_LOOKING.search(n)] == []
    assert all(isinstance(v, str) for v in config.values()), "a ConfigMap holds strings only"
    assert all(isinstance(v, str) for v in secret["stringData"].values())
    url = make_url(secret["stringData"]["VERIFYD_DATABASE_URL"])
    assert url.drivername == "postgresql+psycopg" and url.host
    # Every verifyd container reads both, under these names.
    for c in kube_containers(objects).values():
        assert {"VERIFYD_ENV", "VERIFYD_SECRET_KEY", "VERIFYD_DATABASE_URL"} <= set(c.env)


def test_containers_run_as_the_images_user_read_only(
    compose: dict[str, Any], objects: dict[tuple[str, str], dict[str, Any]]
) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    [user] = re.findall(r"^USER (\d+):\d+$", dockerfile, re.MULTILINE)
    assert '"./[postgres]"' in dockerfile, "the image must carry psycopg"
    images = set()
    for (kind, _), obj in objects.items():
        if kind in ("Deployment", "Job"):
            pod = obj["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert str(pod["securityContext"]["runAsUser"]) == user
            for spec in pod["containers"]:
                images.add(spec["image"])
                assert spec["securityContext"]["readOnlyRootFilesystem"] is True
                assert spec["securityContext"]["allowPrivilegeEscalation"] is False
                assert "/tmp" in {m["mountPath"] for m in spec["volumeMounts"]}
                assert spec["resources"]["requests"]["memory"]
    assert len(images) == 1, images
    api = objects[("Deployment", "verifyd-api")]["spec"]["template"]["spec"]["containers"][0]
    assert api["resources"]["requests"]["cpu"] == "1", "one core per API pod: the sizing unit"
    for name in ("migrate", "api", "worker"):
        assert compose["services"][name]["read_only"] is True
        assert compose["services"][name]["image"] == "verifyd:local"


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_filled_in_settings_pass_production_checks(
    where: str,
    compose: dict[str, Any],
    objects: dict[tuple[str, str], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = (
        compose_containers(compose, env_file(ENV_EXAMPLE))
        if where == "compose"
        else kube_containers(objects)
    )
    envs = [c.env for c in found.values()]
    assert all(e == envs[0] for e in envs), "every process needs the same settings"
    env = envs[0]
    assert env["VERIFYD_ENV"] == "production"
    assert env["VERIFYD_DISPATCHER"] == "off", "the worker delivers, not the API"
    assert production_problems(filled(env), monkeypatch) == []
    # Left as shipped, the secret's placeholder is refused: nobody runs on a known key.
    as_shipped = {**filled(env), "VERIFYD_SECRET_KEY": env["VERIFYD_SECRET_KEY"]}
    assert floors.secret_problem(env["VERIFYD_SECRET_KEY"]) is not None
    assert production_problems(as_shipped, monkeypatch)
    # And a setting production cannot start without, left out, is caught.
    for needed in ("VERIFYD_SMTP_HOST", "VERIFYD_TWILIO_AUTH_TOKEN", "VERIFYD_PUBLIC_BASE_URL"):
        without = {k: v for k, v in filled(env).items() if k != needed}
        assert production_problems(without, monkeypatch), needed


# --- running them -------------------------------------------------------------------------


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*VERIFYD, *argv[1:]],
            env=env,
            cwd=log.parent,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _wait(check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:
        return False


@pytest.mark.postgres
@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_the_manifests_commands_run_with_their_settings(
    where: str,
    compose: dict[str, Any],
    objects: dict[tuple[str, str], dict[str, Any]],
    pg_server: PostgresServer,
    tmp_path: Path,
) -> None:
    """migrate, then serve (answering its probes) and worker, on a fresh PostgreSQL;
    only the address differs: 127.0.0.1 and a free port instead of 0.0.0.0:8000."""
    found = (
        compose_containers(compose, env_file(ENV_EXAMPLE))
        if where == "compose"
        else kube_containers(objects)
    )
    by_command = {c.command: c for c in found.values()}
    url = pg_server.create_database(f"deploy_{where}")
    base = {k: v for k, v in os.environ.items() if not k.startswith("VERIFYD_")}
    env = {**base, **filled(by_command["serve"].env, database_url=url)}

    migrate_ = by_command["migrate"]
    done = subprocess.run(
        [*VERIFYD, *migrate_.argv[1:]], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert f"database at revision {migrate.head()}" in done.stderr

    api = by_command["serve"]
    port = free_port()
    argv = list(api.argv)
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    with (
        running(argv, env, tmp_path / "serve.log") as server,
        running(by_command["worker"].argv, env, tmp_path / "worker.log") as worker,
    ):
        base_url = f"http://127.0.0.1:{port}"
        _wait(lambda: _answers(base_url + "/healthz"), server, tmp_path / "serve.log")
        for _, path, _ in api.probes:
            assert get(base_url + path)[0] == 200, path
        _wait(
            lambda: "verifyd worker production" in (tmp_path / "worker.log").read_text(),
            worker,
            tmp_path / "worker.log",
        )
        for proc, c in ((server, api), (worker, by_command["worker"])):
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=c.grace) in (0, -signal.SIGTERM), c.source
