"""Schema migrations of the SQL projection (Alembic), callable from code.

The worker, the API and ``gridlink replay`` call :func:`upgrade` at start (a worker
whose database does not answer, when its projection's first batch comes:
:mod:`agents.projection`); it brings any database — an
empty one included — to the newest revision. The Alembic files ship inside the
``store`` package, so an installed GridLink migrates without a checkout.
"""

from __future__ import annotations

import fcntl
from importlib.resources import as_file, files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL

from store.db import create_engine, normalise_url, sqlite_file

HEAD = "head"


def config(url: str | URL | None = None, *, connection: Connection | None = None) -> Config:
    """The Alembic configuration of the package, aimed at ``url`` or ``connection``."""
    with as_file(files("store") / "alembic.ini") as ini:
        cfg = Config(str(ini))
        cfg.set_main_option("script_location", str(ini.parent / "migrations"))
    if url is not None:
        cfg.attributes["url"] = normalise_url(url).render_as_string(hide_password=False)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


#: the PostgreSQL advisory lock that serialises migrations ("GLMIGRAT" in ASCII)
ADVISORY_LOCK = 0x474C4D4947524154


def upgrade(url: str | URL, *, revision: str = HEAD) -> None:
    """Migrate the database at ``url`` to ``revision`` (the newest by default).

    Processes that start together on a fresh database (a worker and the API)
    take turns: each holds a lock while it migrates — an advisory lock on
    PostgreSQL, a lock file beside a SQLite database — so the first creates the
    schema and the others find it current."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(parsed)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK})
                connection.commit()  # the lock belongs to the session, not the transaction
                try:
                    command.upgrade(config(connection=connection), revision)
                    connection.commit()
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                       {"key": ADVISORY_LOCK})
                    connection.commit()
        finally:
            engine.dispose()
        return
    path = sqlite_file(parsed)
    if path is None:  # in memory: no other process can see it
        command.upgrade(config(parsed), revision)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".migrating"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            command.upgrade(config(parsed), revision)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def downgrade(url: str | URL, *, revision: str) -> None:
    """Migrate the database at ``url`` back to ``revision`` (``"base"``: no tables)."""
    command.downgrade(config(url), revision)


def current_revision(connection: Connection) -> str | None:
    """The revision the connected database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision the package ships."""
    head = ScriptDirectory.from_config(config()).get_current_head()
    assert head is not None, "the store package ships no migration"
    return head


__all__ = ["config", "current_revision", "downgrade", "head_revision", "upgrade"]
