"""A throwaway PostgreSQL server built from the locally installed binaries."""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

_PG_USER = "postgres"
_START_TIMEOUT = 30.0
_START_ATTEMPTS = 3
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "unix_socket_directories": "''",  # TCP only: no socket-path length or permission issues
    "logging_collector": "off",
}


def _has_server_binaries(bindir: Path) -> bool:
    return all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres"))


def _find_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and _has_server_binaries(Path(out)):
            return Path(out)

    def version_key(path: str) -> tuple[int, ...]:
        match = re.search(r"/postgresql/([\d.]+)/bin$", path)
        return tuple(int(p) for p in match.group(1).split(".") if p) if match else (0,)

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True):
        if _has_server_binaries(Path(candidate)):
            return Path(candidate)
    return None


def _is_root() -> bool:
    return os.geteuid() == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """A private PostgreSQL cluster on 127.0.0.1, tuned for speed, deleted on stop.

    As root (CI containers) the server binaries run as the ``postgres`` user via
    ``runuser``, because PostgreSQL refuses to run as root.
    """

    def __init__(self) -> None:
        """Prepare (but do not start) a server; call :meth:`start` or use ``with``."""
        self._bindir: Path | None = None
        self._tmpdir: Path | None = None
        self._port: int | None = None
        self._log: Path | None = None

    @classmethod
    def available(cls) -> bool:
        """Report whether the PostgreSQL server binaries (and, as root, runuser) exist.

        Returns:
            True when :meth:`start` can be expected to work on this machine.
        """
        if _find_bindir() is None:
            return False
        if _is_root():
            if shutil.which("runuser") is None:
                return False
            try:
                pwd.getpwnam(_PG_USER)
            except KeyError:
                return False
        return True

    @property
    def port(self) -> int:
        """The TCP port the running server listens on (127.0.0.1 only)."""
        if self._port is None:
            raise RuntimeError("PostgresServer is not running")
        return self._port

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        if self._tmpdir is None:
            raise RuntimeError("PostgresServer is not running")
        return self._tmpdir / "data"

    def _cmd(self, name: str, *args: str) -> list[str]:
        assert self._bindir is not None
        cmd = [str(self._bindir / name), *args]
        return ["runuser", "-u", _PG_USER, "--", *cmd] if _is_root() else cmd

    def _run(self, name: str, *args: str, timeout: float = 60.0) -> None:
        proc = subprocess.run(
            self._cmd(name, *args),
            cwd=self._tmpdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{name} {' '.join(args)} failed (exit {proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}\n{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        log = self._log
        if log is None:
            return ""
        try:
            return "postgres.log:\n" + "".join(
                log.read_text(errors="replace").splitlines(True)[-30:]
            )
        except OSError:
            return ""

    def start(self) -> None:
        """Create a fresh cluster and start it; return once it accepts connections.

        Raises:
            RuntimeError: If the binaries are missing or the server does not come up
                within 30 seconds.
        """
        if self._port is not None:
            raise RuntimeError("PostgresServer already started")
        self._bindir = _find_bindir()
        if self._bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found")
        self._tmpdir = Path(tempfile.mkdtemp(prefix="verifyd-pg-"))
        try:
            if _is_root():
                entry = pwd.getpwnam(_PG_USER)
                os.chown(self._tmpdir, entry.pw_uid, entry.pw_gid)
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                _PG_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            )
            self._start_server()
        except BaseException:
            self._kill_postmaster()
            self._cleanup()
            raise

    def _start_server(self) -> None:
        tmpdir = self._tmpdir
        assert tmpdir is not None
        conf = self.data_dir / "postgresql.conf"
        base_conf = conf.read_text()
        last_error: Exception | None = None
        for attempt in range(_START_ATTEMPTS):
            self._log = tmpdir / f"postgres-{attempt}.log"
            port = _free_port()
            settings = {**_SETTINGS, "port": str(port)}
            conf.write_text(
                base_conf
                + "\n# verifyd test harness\n"
                + "".join(f"{key} = {value}\n" for key, value in settings.items())
            )
            deadline = time.monotonic() + _START_TIMEOUT
            try:
                self._pg_ctl_start()
            except RuntimeError as exc:
                self._kill_postmaster()
                if "could not bind" not in str(exc) and "could not create" not in str(exc):
                    raise
                last_error = exc  # the port was taken meanwhile: retry with another
                continue
            self._port = port
            self._wait_ready(deadline)
            return
        raise RuntimeError(f"could not start PostgreSQL: {last_error}")

    def _wait_ready(self, deadline: float) -> None:
        while True:
            try:
                with psycopg.connect(self._conninfo("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"PostgreSQL not ready: {exc}\n{self._log_tail()}") from exc
                time.sleep(0.1)

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _cleanup(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        self._tmpdir = None
        self._port = None
        self._log = None

    def stop(self) -> None:
        """Shut the server down (fast mode) and delete its data directory. Idempotent."""
        if self._tmpdir is None:
            return
        try:
            if self._port is not None:
                try:
                    self._run(
                        "pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30"
                    )
                except (RuntimeError, subprocess.TimeoutExpired):
                    self._kill_postmaster()
        finally:
            self._cleanup()

    def halt(self) -> None:
        """Stop the server (fast mode: sessions are cut) but keep its data and its port.

        An outage for the processes using it; :meth:`resume` ends it.
        """
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30")

    def _pg_ctl_start(self) -> None:
        """``pg_ctl start`` on this data directory, waiting until it accepts connections."""
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data_dir),
            "-l",
            str(self._log),
            "-w",
            "-t",
            str(int(_START_TIMEOUT)),
            timeout=_START_TIMEOUT + 10,
        )

    def resume(self) -> None:
        """Start a :meth:`halt`-ed server again on the same port and data; wait until ready."""
        port = self.port  # raises unless started (and not stopped) before
        self._pg_ctl_start()
        assert self._port == port
        self._wait_ready(time.monotonic() + _START_TIMEOUT)

    def _conninfo(self, dbname: str) -> str:
        assert self._port is not None
        return f"host=127.0.0.1 port={self._port} user={_PG_USER} dbname={dbname}"

    def url(self, dbname: str = "postgres") -> str:
        """Build a SQLAlchemy URL for a database on this server.

        Args:
            dbname: Database name.

        Returns:
            ``postgresql+psycopg://postgres@127.0.0.1:PORT/dbname``.
        """
        return f"postgresql+psycopg://{_PG_USER}@127.0.0.1:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """Build a libpq URL (usable by ``psycopg.connect``) for a database on this server.

        Args:
            dbname: Database name.

        Returns:
            ``postgresql://postgres@127.0.0.1:PORT/dbname``.
        """
        return f"postgresql://{_PG_USER}@127.0.0.1:{self.port}/{dbname}"

    def _admin(self) -> psycopg.Connection[TupleRow]:
        if self._port is None:
            raise RuntimeError("PostgresServer is not running")
        return psycopg.connect(self._conninfo("postgres"), autocommit=True, connect_timeout=10)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database, optionally cloned from a template database.

        Other connections to the template are terminated first, since PostgreSQL
        refuses to copy a database that is in use.

        Args:
            name: Name of the new database.
            template: Database to copy, or None for the default (template1).

        Returns:
            The SQLAlchemy URL of the new database (see :meth:`url`).
        """
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            stmt = sql.SQL("{} TEMPLATE {}").format(stmt, sql.Identifier(template))
        with self._admin() as conn:
            for attempt in range(5):
                if template is not None:
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = %s AND pid <> pg_backend_pid()",
                        (template,),
                    )
                try:
                    conn.execute(stmt)
                    break
                except psycopg.errors.ObjectInUse:
                    if attempt == 4:
                        raise
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database (if it exists), forcibly disconnecting its sessions.

        Args:
            name: Name of the database to drop.
        """
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
