"""The reference app of bench/run.py: what the framework and one durable write cost alone.

- ``POST /noop``: an ``async def`` that answers a small JSON object. Nothing is cheaper
  on FastAPI and uvicorn: the framework's ceiling.
- ``POST /insert``: an ``async def`` that inserts one row and commits, inline on the
  event loop, through one module-level plain ``sqlite3`` connection in WAL mode with
  ``PRAGMA synchronous=FULL`` (every commit is fsynced): the floor for one durable
  write per request, and the strict one: the leanest honest server that makes one
  durable write per request (no thread hop, no pool; the loop waits out each fsync).
  bench/run.py's targets are measured against it.
- ``POST /insert-def``: the same insert and commit in a plain ``def`` endpoint, which
  FastAPI runs in its thread pool (anyio's worker threads), as a typical sync FastAPI
  app would: what such an app pays for the same write, the thread hop included. The
  second floor, reported beside the first but with no target of its own. It costs more
  CPU per request than ``/insert`` (the hop to a worker and back), but the loop keeps
  reading and answering while a worker waits on the fsync, so its req/s can match or
  pass ``/insert``'s (the first smoke run: 2,193 against 2,049 req/s at c=16, 0.436
  against 0.314 CPU ms per request).

``/insert-def`` writes through one second connection (:data:`def_conn`, WAL,
``synchronous=FULL``, ``busy_timeout=10000``) shared by the worker threads under a
``threading.Lock``. The alternative, a connection per worker thread
(``threading.local``) each with ``busy_timeout=10000``, was slower in a smoke run
(c=16, 1 s warm-up + 2 s measured, five alternating pairs on the shared 2-core box:
20,240 requests under the lock, 18,546 per thread, the server at one full core either
way): per-thread connections race for SQLite's one write lock, and a connection that
loses gets SQLITE_BUSY and sleeps in SQLite's busy handler (a millisecond-scale
back-off) where a thread queued on the Python lock wakes as soon as it is released.

The SQLite file is ``BENCH_REFERENCE_DB`` (default ``reference.db`` in the current
directory). ``python bench/reference.py`` serves it on 127.0.0.1:``BENCH_REFERENCE_PORT``
under uvicorn with the flags ``verifyd serve`` uses (:data:`UVICORN`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

#: ``verifyd serve``'s uvicorn flags (src/verifyd/cli/serve.py); the loop and the HTTP
#: parser are uvicorn's "auto" for both, which picks uvloop and httptools when installed.
UVICORN: dict[str, Any] = {
    "workers": 1,
    "access_log": False,
    "proxy_headers": False,
    "log_level": "info",
}

DB_PATH = os.environ.get("BENCH_REFERENCE_DB", "reference.db")
INSERT = "INSERT INTO hits (at, note) VALUES (?, ?)"

#: ``/insert``'s connection, used on the event loop's thread only.
conn = sqlite3.connect(DB_PATH, check_same_thread=False)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=FULL")
conn.execute(
    "CREATE TABLE IF NOT EXISTS hits (id INTEGER PRIMARY KEY, at REAL NOT NULL, note TEXT)"
)
conn.commit()

#: ``/insert-def``'s connection, shared by the thread pool's workers under :data:`def_lock`.
def_conn = sqlite3.connect(DB_PATH, check_same_thread=False)
def_conn.execute("PRAGMA busy_timeout=10000")
def_conn.execute("PRAGMA synchronous=FULL")
def_lock = threading.Lock()


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    conn.close()
    with def_lock:
        def_conn.close()


app = FastAPI(lifespan=lifespan)


@app.post("/noop")
async def noop() -> dict[str, Any]:
    """The framework's ceiling: nothing but the answer."""
    return {"ok": True}


@app.post("/insert")
async def insert() -> dict[str, Any]:
    """One row, committed (fsynced) before the answer, on the loop: the strict floor."""
    cur = conn.execute(INSERT, (time.time(), "hit"))
    conn.commit()
    return {"ok": True, "id": cur.lastrowid}


@app.post("/insert-def")
def insert_def() -> dict[str, Any]:
    """The same durable write from a worker thread: what a sync FastAPI endpoint pays."""
    with def_lock:
        cur = def_conn.execute(INSERT, (time.time(), "hit"))
        def_conn.commit()
    return {"ok": True, "id": cur.lastrowid}


def main() -> None:
    """Serve the app on 127.0.0.1:``BENCH_REFERENCE_PORT`` (default 8001)."""
    import uvicorn

    port = int(os.environ.get("BENCH_REFERENCE_PORT", "8001"))
    uvicorn.run(app, host="127.0.0.1", port=port, **UVICORN)


if __name__ == "__main__":
    main()
