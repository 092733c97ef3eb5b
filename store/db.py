"""Engines and sessions for the SQL projection.

SQLite is the embedded default: a file database gets its parent directory
created, WAL journal mode (readers never block the projector), foreign keys on
and a busy timeout. PostgreSQL goes through psycopg 3: ``postgresql://`` and
``postgres://`` URLs are mapped to ``postgresql+psycopg://``. JSON columns are
encoded with msgspec, so an event struct can be stored as it is.

The session type (:class:`Session`) and the error a database raises
(:data:`StoreError`) are named here too, so that the entry points hold a
session and catch an outage without importing SQLAlchemy themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import Engine, event
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

#: the base of every error the store's driver raises (a lost connection, a refusal …)
StoreError = SQLAlchemyError

SQLITE_BUSY_TIMEOUT_MS = 10_000
_PG_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}
_json_encoder = msgspec.json.Encoder()


def _json_dumps(value: Any) -> str:
    return _json_encoder.encode(value).decode()


def normalise_url(url: str | URL) -> URL:
    """The URL with PostgreSQL mapped to psycopg 3; other drivers are refused."""
    parsed = make_url(url)
    if parsed.drivername in _PG_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        return parsed
    raise ValueError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite:///path/to/file.db or postgresql://user@host/db"
    )


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database."""
    database = url.database or ""
    if (
        url.get_backend_name() != "sqlite"
        or database in ("", ":memory:")
        or database.startswith("file:")
    ):
        return None
    return Path(database)


def create_engine(url: str | URL, **options: Any) -> Engine:
    """An engine for the projection at ``url`` (see the module docstring)."""
    parsed = normalise_url(url)
    options.setdefault("json_serializer", _json_dumps)
    options.setdefault("json_deserializer", msgspec.json.decode)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, options)
    options.setdefault("pool_pre_ping", True)
    return sa_create_engine(parsed, **options)


def _sqlite_engine(url: URL, options: dict[str, Any]) -> Engine:
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa_create_engine(url, **options)
    event.listen(engine, "connect", _sqlite_pragmas(wal=path is not None))
    return engine


def _sqlite_pragmas(*, wal: bool) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints, safe in WAL
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    return on_connect


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def refused_for_good(error: DBAPIError) -> bool:
    """Whether the database refused the data itself — a value it cannot hold (NUL in a
    PostgreSQL text, a number out of range) or a constraint — so that the same write
    would be refused again; anything else (a lost connection, a locked or full
    database) is an outage, waited out."""
    return isinstance(error, DataError | IntegrityError)


__all__ = ["Session", "StoreError", "create_engine", "normalise_url", "refused_for_good",
           "session_factory", "sqlite_file"]
