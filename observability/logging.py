"""Logging set-up (日志): plain text for people, or JSON lines for a log pipeline.

``GRIDLINK_LOG_LEVEL`` sets the level; with ``GRIDLINK_LOG_JSON=true`` every
record is one JSON object on one line::

    {"time": "2026-11-26T10:15:00.123+08:00", "level": "INFO", "logger": "agents.writer",
     "message": "…", "case_id": "C-371502004-20261126-0001",
     "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}

``case_id`` appears when the call passes ``extra={"case_id": …}`` or runs inside
:func:`case_context`; ``trace_id`` when a span is current (tracing on) or the
call passes ``extra={"trace_id": …}``. An exception adds ``exc``.

Faust's worker configures logging itself when it starts, so
:func:`logging_config` is also handed to it (``Worker(logging_config=…)``) and
both end up with the same handler.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from observability.tracing import current_trace_id
from settings import Settings

_case_id: ContextVar[str | None] = ContextVar("gridlink_case_id", default=None)

TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


@contextmanager
def case_context(case_id: str) -> Iterator[None]:
    """Records logged inside the block carry ``case_id``."""
    token = _case_id.set(case_id)
    try:
        yield
    finally:
        _case_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (+ case_id, trace_id, exc)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created).astimezone().isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        case_id = getattr(record, "case_id", None) or _case_id.get()
        if case_id:
            entry["case_id"] = case_id
        trace_id = getattr(record, "trace_id", None) or current_trace_id()
        if trace_id:
            entry["trace_id"] = trace_id
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class RedactKeys(logging.Filter):
    """Masks ``key=`` query parameters: the live board's ``EventSource`` passes the API
    key in its URL, which the HTTP access log would otherwise record."""

    _key = re.compile(r"([?&]key=)[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._key.sub(r"\1***", arg) if isinstance(arg, str) else arg
                                for arg in record.args)
        if isinstance(record.msg, str):
            record.msg = self._key.sub(r"\1***", record.msg)
        return True


ACCESS_LOGGERS = ("uvicorn.access",)


def logging_config(settings: Settings) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for ``settings``: one handler on stderr at the
    root, JSON or text. Loggers created earlier keep working."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if settings.log_json
        else {"format": TEXT_FORMAT})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"gridlink": formatter},
        "handlers": {"gridlink": {"class": "logging.StreamHandler", "formatter": "gridlink",
                                  "stream": "ext://sys.stderr"}},
        "root": {"level": settings.log_level.upper(), "handlers": ["gridlink"]},
    }


def configure(settings: Settings) -> None:
    """Configure this process's logging from ``settings`` (replaces root handlers)."""
    logging.root.handlers.clear()
    logging.config.dictConfig(logging_config(settings))
    for name in ACCESS_LOGGERS:
        access = logging.getLogger(name)
        if not any(isinstance(f, RedactKeys) for f in access.filters):
            access.addFilter(RedactKeys())


__all__ = ["JsonFormatter", "RedactKeys", "case_context", "configure", "logging_config"]
