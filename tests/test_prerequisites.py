"""scripts/test-prerequisites, run for real in a subprocess against a made-up machine.

Where it looks (Chromium, the PostgreSQL directories, the PATH for pg_config/curl/jq) and
the apt-get it calls are pointed into a temporary directory; `id` and `sudo` are stubs on
PATH where a test plays a user who is not root. No test can install anything: apt-get is
always a stub that records its arguments, called by absolute path, never through sudo's PATH.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "test-prerequisites"
PG_BINARIES = ("initdb", "pg_ctl", "postgres")

# Installs, when asked to, what each package would bring onto the made-up machine.
APT_GET_STUB = r"""#!/usr/bin/env bash
printf 'DEBIAN_FRONTEND=%s %s\n' "${DEBIAN_FRONTEND:-}" "$*" >> "$STUB_LOG"
[ "$1" = install ] && [ "${STUB_APT_INSTALLS:-}" = 1 ] || exit 0
for pkg in "$@"; do
    case $pkg in
        chromium) touch "$VERIFYD_PREREQ_CHROMIUM"; chmod +x "$VERIFYD_PREREQ_CHROMIUM" ;;
        postgresql) mkdir -p "$VERIFYD_PREREQ_PG_LIBDIR/16/bin"
                    for b in initdb pg_ctl postgres; do
                        touch "$VERIFYD_PREREQ_PG_LIBDIR/16/bin/$b"; done ;;
        curl|jq|wrk|luajit) printf '#!/bin/sh\n' > "$VERIFYD_PREREQ_PATH/$pkg"
                 chmod +x "$VERIFYD_PREREQ_PATH/$pkg" ;;
    esac
done
"""
ID_STUB = r"""#!/usr/bin/env bash
if [ "$1" = -u ]; then echo 1000; else exec /usr/bin/id "$@"; fi
"""
SUDO_STUB = r"""#!/usr/bin/env bash
printf 'sudo %s\n' "$*" >> "$STUB_LOG"
[ "${STUB_SUDO_OK:-}" = 1 ] || { echo "sudo: a password is required" >&2; exit 1; }
[ "$1" = -n ] && shift
exec "$@"
"""


def _executable(path: Path, text: str = "#!/bin/sh\n") -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@dataclass
class Machine:
    """A made-up machine: nothing installed until a test adds it."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("tools", "stubs", "pg"):
            (self.root / name).mkdir()
        self.log.touch()
        _executable(self.apt_get, APT_GET_STUB)
        self.env = {
            "PATH": f"{self.root / 'stubs'}:{os.environ['PATH']}",
            "HOME": str(self.root),
            "LC_ALL": "C",
            "STUB_LOG": str(self.log),
            "VERIFYD_PREREQ_CHROMIUM": str(self.root / "chromium"),
            "VERIFYD_PREREQ_PG_LIBDIR": str(self.root / "pg"),
            "VERIFYD_PREREQ_PATH": str(self.root / "tools"),
            "VERIFYD_PREREQ_APT_GET": str(self.apt_get),
            "VERIFYD_PREREQ_CAN_INSTALL": "yes",
        }

    @property
    def log(self) -> Path:
        return self.root / "calls.log"

    @property
    def apt_get(self) -> Path:
        return self.root / "apt-get"

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def add_postgresql(self, version: str = "15", binaries: tuple[str, ...] = PG_BINARIES) -> Path:
        bindir = self.root / "pg" / version / "bin"
        bindir.mkdir(parents=True)
        for name in binaries:
            _executable(bindir / name)
        return bindir

    def add_pg_config(self, bindir: Path) -> None:
        _executable(self.root / "tools" / "pg_config", f"#!/bin/sh\necho {bindir}\n")

    def add_chromium(self) -> None:
        _executable(self.root / "chromium")

    def add_tool(self, name: str) -> None:
        _executable(self.root / "tools" / name)

    def add_everything(self) -> None:
        self.add_postgresql()
        self.add_chromium()
        for tool in ("curl", "jq", "wrk", "luajit"):
            self.add_tool(tool)

    def as_user_without_root(self, *, passwordless_sudo: bool) -> None:
        """`id -u` answers 1000 and `sudo -n` succeeds or asks for a password."""
        del self.env["VERIFYD_PREREQ_CAN_INSTALL"]  # the script decides by itself
        _executable(self.root / "stubs" / "id", ID_STUB)
        _executable(self.root / "stubs" / "sudo", SUDO_STUB)
        self.env["STUB_SUDO_OK"] = "1" if passwordless_sudo else "0"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def test_nothing_missing_passes_quietly_and_installs_nothing(machine: Machine) -> None:
    machine.add_everything()
    done = machine.run()
    assert done.returncode == 0, done.stderr
    assert done.stdout == done.stderr == ""
    assert machine.calls() == []


def test_pg_config_bindir_counts_when_it_holds_the_server_binaries(machine: Machine) -> None:
    machine.add_everything()
    shutil.rmtree(machine.root / "pg" / "15")
    elsewhere = machine.root / "elsewhere"
    elsewhere.mkdir()
    for name in PG_BINARIES:
        _executable(elsewhere / name)
    machine.add_pg_config(elsewhere)
    assert machine.run().returncode == 0


@pytest.mark.parametrize(
    ("binaries", "found"),
    [
        pytest.param(PG_BINARIES, True, id="all-three"),
        pytest.param(("initdb", "pg_ctl"), False, id="client-only-no-postgres"),
    ],
)
def test_postgresql_needs_initdb_pg_ctl_and_postgres(
    machine: Machine, binaries: tuple[str, ...], found: bool
) -> None:
    machine.add_chromium()
    for tool in ("curl", "jq", "wrk", "luajit"):
        machine.add_tool(tool)
    machine.add_postgresql("16", binaries)
    # pg_config points at a directory without the server: the versioned directories decide
    machine.add_pg_config(machine.root / "nowhere")
    machine.env["VERIFYD_PREREQ_CAN_INSTALL"] = "no"
    done = machine.run()
    assert (done.returncode == 0) is found, done.stderr
    assert ("install -y postgresql" in done.stderr) is not found


def test_missing_and_cannot_install_prints_the_one_command_and_runs_nothing(
    machine: Machine,
) -> None:
    machine.add_postgresql()
    for tool in ("curl", "wrk", "luajit"):
        machine.add_tool(tool)
    machine.as_user_without_root(passwordless_sudo=False)
    done = machine.run()
    assert done.returncode == 1
    assert "sudo apt-get update && sudo apt-get install -y chromium jq\n" in done.stderr
    assert "then run make test again" in done.stderr
    assert "chromium: no " in done.stderr and "jq: not on PATH" in done.stderr
    assert machine.calls() == ["sudo -n true"]  # asked, and apt-get never ran


def test_missing_without_apt_get_stops_too(machine: Machine) -> None:
    machine.add_everything()
    (machine.root / "chromium").unlink()
    machine.env["VERIFYD_PREREQ_APT_GET"] = str(machine.root / "no-apt-get")
    done = machine.run()
    assert done.returncode == 1
    assert "apt-get install -y chromium\n" in done.stderr
    assert machine.calls() == []


def test_a_chromium_that_cannot_run_is_missing(machine: Machine) -> None:
    machine.add_everything()
    (machine.root / "chromium").chmod(0o644)
    machine.env["VERIFYD_PREREQ_CAN_INSTALL"] = "no"
    done = machine.run()
    assert done.returncode == 1
    assert "install -y chromium\n" in done.stderr


def test_the_skip_switches_drop_their_package(machine: Machine) -> None:
    for tool in ("curl", "jq", "wrk", "luajit"):
        machine.add_tool(tool)
    machine.env["VERIFYD_PREREQ_CAN_INSTALL"] = "no"
    assert machine.run().returncode == 1
    machine.env["VERIFYD_TEST_SKIP_PG"] = "1"
    done = machine.run()
    assert done.returncode == 1
    assert "install -y chromium\n" in done.stderr  # postgresql no longer asked for
    machine.env["VERIFYD_TEST_SKIP_BROWSER"] = "1"
    assert machine.run().returncode == 0


def test_missing_and_can_install_runs_apt_get(machine: Machine) -> None:
    machine.env["STUB_APT_INSTALLS"] = "1"
    done = machine.run()
    assert done.returncode == 0, done.stderr
    assert machine.calls() == [
        "DEBIAN_FRONTEND= update",
        "DEBIAN_FRONTEND=noninteractive install -y --no-install-recommends "
        "postgresql chromium curl jq wrk luajit",
    ]
    assert "make test needs postgresql chromium curl jq wrk luajit" in done.stderr
    assert "installing them" in done.stderr
    # what apt-get brought is checked again, and found
    assert machine.run().returncode == 0
    assert len(machine.calls()) == 2


def test_passwordless_sudo_installs_through_sudo(machine: Machine) -> None:
    machine.add_everything()
    (machine.root / "chromium").unlink()
    machine.as_user_without_root(passwordless_sudo=True)
    machine.env["STUB_APT_INSTALLS"] = "1"
    done = machine.run()
    assert done.returncode == 0, done.stderr
    apt = machine.apt_get
    assert machine.calls() == [
        "sudo -n true",
        f"sudo -n {apt} update",
        "DEBIAN_FRONTEND= update",
        f"sudo -n env DEBIAN_FRONTEND=noninteractive {apt} install -y --no-install-recommends "
        "chromium",
        "DEBIAN_FRONTEND=noninteractive install -y --no-install-recommends chromium",
    ]


def test_an_install_that_brings_nothing_fails(machine: Machine) -> None:
    machine.add_everything()
    (machine.root / "chromium").unlink()
    done = machine.run()  # the stub apt-get succeeds but installs nothing
    assert done.returncode == 1
    assert "still missing after apt-get: chromium" in done.stderr
    assert len(machine.calls()) == 2


def test_make_test_stops_before_anything_else(machine: Machine, tmp_path: Path) -> None:
    """The Makefile runs the check first and nothing after a failed one."""
    machine.add_everything()
    (machine.root / "chromium").unlink()
    machine.env["VERIFYD_PREREQ_CAN_INSTALL"] = "no"
    venv = tmp_path / "venv"
    done = subprocess.run(
        # PYTHON=false: should make go on regardless, it fails at once instead of installing
        ["make", "-C", str(ROOT), "--no-print-directory", "test", f"VENV={venv}", "PYTHON=false"],
        env=machine.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "apt-get install -y chromium" in done.stderr
    assert done.stdout.splitlines() == ["bash scripts/test-prerequisites"], done.stdout
    assert not venv.exists()
