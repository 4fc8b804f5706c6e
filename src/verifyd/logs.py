"""Process logging: the human ``text`` lines or one JSON object per line, with request ids."""

from __future__ import annotations

import json
import logging
import logging.config
import sys
import time
from contextvars import ContextVar
from typing import Any, Literal

from verifyd.settings import Settings

#: The id of the request being served (``X-Request-Id``); ``None`` outside a request.
#: It lives here, not in the API package, so any code can log with it.
REQUEST_ID: ContextVar[str | None] = ContextVar("verifyd_request_id", default=None)

#: verifyd's own lines in ``text`` mode, as ``verifyd serve`` has always printed them.
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"

LogFormat = Literal["text", "json"]

# Loggers whose INFO lines are noise or worse: alembic answers every /readyz probe,
# httpx prints whole URLs (which can carry credentials or destinations).
_QUIET = {"alembic": {"level": "WARNING"}, "httpx": {"level": "WARNING"}}

# What every LogRecord carries; anything else on a record came in through ``extra=``.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "request_id",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``message``, then extras.

    ``request_id`` is added inside a request, ``exc`` (the formatted traceback) when the
    record carries an exception, and any ``extra=`` fields of the call as they are.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a single line of JSON (newlines inside are escaped)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc: dict[str, Any] = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id is not None:
            doc["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str)


class RequestIdFilter(logging.Filter):
    """Stamps the current request id on each record as it is emitted.

    The formatter reads the context variable too, but a record formatted later (a
    queue handler, pytest's capture) would by then have lost its request.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach ``request_id`` (when inside a request); never drops a record."""
        if not hasattr(record, "request_id"):
            request_id = REQUEST_ID.get()
            if request_id is not None:
                record.request_id = request_id
        return True


def dict_config(log_format: LogFormat, *, server: bool = False) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` document for a format.

    It is plain data, so uvicorn can hand it (as ``log_config``) to each worker
    process it spawns, which then configures itself exactly like the first.

    Args:
        log_format: ``text`` (the human lines) or ``json`` (one object per line).
        server: Configure uvicorn's loggers too (``verifyd serve``).

    Returns:
        The configuration; every line goes to standard error.
    """
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": log_format,
        "filters": ["request_id"],
    }
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "verifyd.logs.RequestIdFilter"}},
        "formatters": {
            "text": {"format": TEXT_FORMAT},
            "json": {"()": "verifyd.logs.JsonFormatter"},
        },
        "handlers": {"default": handler},
        "loggers": dict(_QUIET),
        "root": {"level": "INFO", "handlers": ["default"]},
    }
    if not server:
        return config
    if log_format == "json":
        # uvicorn's lines go through the root handler like every other line.
        uvicorn = {"level": "INFO", "handlers": [], "propagate": True}
        config["loggers"].update({"uvicorn": uvicorn, "uvicorn.error": {"level": "INFO"}})
        return config
    # Text: uvicorn's own "INFO:     Started server process" lines, as before.
    config["formatters"]["uvicorn"] = {
        "()": "uvicorn.logging.DefaultFormatter",
        "fmt": "%(levelprefix)s %(message)s",
        "use_colors": None,
    }
    config["handlers"]["uvicorn"] = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "uvicorn",
    }
    config["loggers"].update(
        {
            "uvicorn": {"level": "INFO", "handlers": ["uvicorn"], "propagate": False},
            "uvicorn.error": {"level": "INFO"},
        }
    )
    return config


def configure(settings: Settings, *, server: bool = False) -> dict[str, Any]:
    """Install the logging of ``settings.log_format`` on the root logger.

    Args:
        settings: Their ``log_format`` chooses ``text`` or ``json``.
        server: Configure uvicorn's loggers too (``verifyd serve``).

    Returns:
        The configuration applied, for uvicorn's ``log_config``.
    """
    config = dict_config(settings.log_format, server=server)
    logging.config.dictConfig(config)
    return config


def announce(settings: Settings, line: str) -> None:
    """Say a start-up line: printed to stderr in ``text`` mode, logged in ``json`` mode.

    In ``json`` mode every line on stderr is a JSON object, the banner included.
    """
    if settings.log_format == "json":
        logging.getLogger("verifyd").info("%s", line)
    else:
        print(line, file=sys.stderr)
