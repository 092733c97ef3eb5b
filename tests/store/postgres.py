"""A throwaway PostgreSQL cluster for the store tests and the benchmark.

It runs the server binaries of the Debian ``postgresql`` package
(``/usr/lib/postgresql/<version>/bin``; ``.ci/run`` installs it) in a
temporary directory, on a free loopback port, with its unix socket in that
directory, and ``fsync`` off (nothing here needs to survive a crash). initdb
refuses to run as root, so as root the cluster runs as the ``postgres``
system user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from topics.local_kafka import free_port

BIN_GLOB = "/usr/lib/postgresql/*/bin"
SERVER_USER = "postgres"
SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed, or the cluster did not start."""


def server_bin() -> Path:
    """The newest installed server binaries; raises :class:`PostgresUnavailable`."""
    found = [Path(p) for p in glob.glob(BIN_GLOB) if (Path(p) / "initdb").exists()]
    if not found:
        raise PostgresUnavailable(
            f"PostgreSQL server binaries not found ({BIN_GLOB}/initdb): install the Debian "
            "'postgresql' package (apt-get install postgresql), as .ci/run does"
        )
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


class PostgresCluster:
    """``start()``, ``create_database(name) -> url``, ``stop()``; ``server_down()`` and
    ``server_up()`` for an outage."""

    def __init__(self) -> None:
        self.bin = server_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="gridlink-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._as_root = os.geteuid() == 0
        self._started = False

    # -- lifecycle

    def start(self) -> None:
        if self._as_root:
            user = pwd.getpwnam(SERVER_USER)  # created by the Debian package
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        self.server_up()

    def stop(self) -> None:
        try:
            self.server_down()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def server_down(self) -> None:
        """Stop the server (clients are disconnected, connections refused); its data stays."""
        if self._started:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            self._started = False

    def server_up(self) -> None:
        """Start the server on its port (again, after :meth:`server_down`)."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        self._started = True

    # -- databases

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(sql)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self._as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.dir, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            output = done.stderr.strip() or done.stdout.strip()
            raise PostgresUnavailable(f"{program} failed ({done.returncode}): {output}\n{log}")
