"""Schema migrations of the SQL projection (Alembic), callable from code.

The worker, the API and ``gridlink replay`` call :func:`upgrade` at start; it
brings any database — an empty one included — to the newest revision. The
Alembic files ship inside the ``store`` package, so an installed GridLink
migrates without a checkout.
"""

from __future__ import annotations

from importlib.resources import as_file, files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.engine import URL

from store.db import normalise_url

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


def upgrade(url: str | URL, *, revision: str = HEAD) -> None:
    """Migrate the database at ``url`` to ``revision`` (the newest by default)."""
    command.upgrade(config(url), revision)


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
