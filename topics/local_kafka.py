"""A local Apache Kafka (KRaft) for development, tests and the demo: one broker,
or a cluster of several on one machine.

``gridlink kafka up`` fetches one pinned Kafka release's jars from Maven
Central with Maven (``kafka-pom.xml`` beside this file), caches them outside
the repository, formats KRaft storage once, starts a combined broker and
controller on 127.0.0.1, and waits until the broker answers metadata requests.
``down`` stops it cleanly (SIGTERM, then SIGKILL after a grace period).

``gridlink kafka up --brokers 3`` runs :class:`LocalCluster`: three such nodes,
each a broker and one of three voters of the controller quorum, each with its
own data directory (``<kafka dir>/node-<id>``), ports, pid file and logs, so a
test can kill one (``kill -9``, ``kill -STOP``) and start it again on its data.

``gridlink kafka up --secure`` (one node or several) runs them as a secured cluster
is run (:class:`LocalSecurity`): a CA and a certificate per node it generates with
``openssl``, one SASL_SSL listener for clients and between brokers (SCRAM), the
controllers' own listener over TLS (PLAIN, with the broker's static credentials:
SCRAM users live in the metadata the controllers serve), SCRAM users added when
storage is formatted (``kafka-storage format --add-scram``), the KRaft
``StandardAuthorizer`` with only the broker itself and the administrator as super
users, and no topic created by a client's mere mention.

Everything is real Apache Kafka; nothing here imitates a broker.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from settings import Settings
from topics.acls import ADMIN
from topics.registry import replication_for

if TYPE_CHECKING:
    from kafka import KafkaAdminClient

KAFKA_VERSION = "4.1.1"
_HERE = Path(__file__).resolve().parent
POM = _HERE / "kafka-pom.xml"
LOG4J_CONFIG = _HERE / "kafka-log4j2.properties"


# What a cluster of several local nodes sets beyond a single broker: each value is
# chosen so a fault test (one broker killed with -9, or frozen with -STOP) sees the
# cluster react within seconds instead of the defaults' tens of seconds, without a
# busy two-core machine's pauses being taken for failures.
CLUSTER_PROPERTIES = """\
# -- a cluster of several local nodes --
# A broker that stops heartbeating (killed, frozen) is fenced by the controller
# after this long and leaves every ISR then, so acks=all writes stall at most this
# long (Kafka's default 9 s); 6 s still rides out a GC or scheduling pause here.
broker.session.timeout.ms=6000
# Heartbeats to the controller, several per session timeout (default 2 s).
broker.heartbeat.interval.ms=1000
# A live follower that has not caught up for this long leaves the ISR (default 30 s),
# so a slow replica holds acks=all writes back for at most 10 s.
replica.lag.time.max.ms=10000
# Never elect a replica that is not in sync: it would drop acknowledged records.
unclean.leader.election.enable=false
# Topics created without a replication factor (auto-created ones) get the cluster's.
default.replication.factor={replication}
# A restarted node takes back the leadership of its preferred partitions within
# 30 s of catching up (default 5 min), so each fault of a suite starts from the
# same leaders.
leader.imbalance.check.interval.seconds=30
# The controller quorum's own timeouts (election 1 s, fetch 2 s) are prompt already.
"""


def quorum_voters(host: str, controllers: list[tuple[int, int]]) -> str:
    """``controller.quorum.voters`` of a static KRaft quorum: ``id@host:port`` of every
    controller, comma-separated."""
    return ",".join(f"{node_id}@{host}:{port}" for node_id, port in controllers)


def new_cluster_id() -> str:
    """A KRaft cluster id: a base64url-encoded UUID that does not start with "-" (it
    would be read as an option)."""
    cid = "-"
    while cid.startswith("-"):
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cid


class LocalKafkaError(RuntimeError):
    """Something an operator must fix before the local broker can run."""


BROKER_USER = "broker"  # the brokers' own principal, between brokers and to controllers
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
CLIENT_MECHANISM = "SCRAM-SHA-512"
SECURED_MARKER = "secured"  # in a node's data dir: its storage was formatted --secure
CERT_DAYS = 825


@dataclass(frozen=True)
class LocalSecurity:
    """The secrets of a secured local cluster, kept in ``directory`` (``<kafka dir>/secure``):
    ``ca.pem`` (and its key), ``node-<id>.pem`` (each node's key and certificate, for
    127.0.0.1 and localhost), ``users/<name>.password`` (0600) for the brokers' own user
    and every user of ``users``, and ``command-signing.key``. Made once
    (:meth:`prepare`), kept until ``--fresh``."""

    directory: Path
    users: tuple[str, ...] = ()  # SCRAM users a client may be: the ACL table's principals
    host: str = "127.0.0.1"
    super_users: tuple[str, ...] = field(default=(BROKER_USER, ADMIN))

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def signing_key_file(self) -> Path:
        return self.directory / "command-signing.key"

    def keystore(self, node_id: int) -> Path:
        return self.directory / f"node-{node_id}.pem"

    def password_file(self, user: str) -> Path:
        return self.directory / "users" / f"{user}.password"

    def password(self, user: str) -> str:
        return self.password_file(user).read_text(encoding="utf-8").strip()

    @property
    def all_users(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((BROKER_USER, *self.super_users, *self.users)))

    # ---- making the secrets ---------------------------------------------------------

    def prepare(self, node_ids: Sequence[int]) -> None:
        """The CA, a certificate per node, a password per user and the signing key, each
        made unless it exists."""
        _require("openssl", "openssl makes the local cluster's CA and certificates")
        (self.directory / "users").mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        if not self.ca_file.exists():
            self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes",
                          "-keyout", str(self.directory / "ca.key"), "-out", str(self.ca_file),
                          "-days", str(CERT_DAYS), "-subj", "/CN=GridLink local Kafka CA",
                          "-addext", "basicConstraints=critical,CA:TRUE",
                          "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        for node_id in node_ids:
            if not self.keystore(node_id).exists():
                self._node_certificate(node_id)
        for user in self.all_users:
            _secret_file(self.password_file(user), secrets.token_urlsafe(24))
        _secret_file(self.signing_key_file, secrets.token_urlsafe(32))

    def _node_certificate(self, node_id: int) -> None:
        work = self.directory / f"node-{node_id}.work"
        work.mkdir(exist_ok=True)
        key, csr, cert, ext = (work / n for n in ("key.pem", "csr.pem", "cert.pem", "ext.cnf"))
        names = ["IP:127.0.0.1", "DNS:localhost"]
        if self.host not in ("127.0.0.1", "localhost"):
            names.append(f"{'IP' if _is_ip(self.host) else 'DNS'}:{self.host}")
        ext.write_text(f"subjectAltName={','.join(names)}\n"
                       "extendedKeyUsage=serverAuth,clientAuth\n")
        self._openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                      "-out", str(csr), "-subj", f"/CN=gridlink-kafka-{node_id}")
        self._openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca_file),
                      "-CAkey", str(self.directory / "ca.key"), "-CAcreateserial",
                      "-out", str(cert), "-days", str(CERT_DAYS), "-extfile", str(ext))
        keystore = self.keystore(node_id)
        _secret_file(keystore, key.read_text() + cert.read_text() + self.ca_file.read_text())
        shutil.rmtree(work)

    @staticmethod
    def _openssl(*args: str) -> None:
        result = subprocess.run(["openssl", *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise LocalKafkaError(f"openssl {args[0]} failed: {result.stderr.strip()}")

    # ---- what the brokers and the clients are given --------------------------------

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments adding every user's SCRAM credentials."""
        return [argument for user in self.all_users for mechanism in SCRAM_MECHANISMS
                for argument in ("--add-scram",
                                 f"{mechanism}=[name={user},password={self.password(user)}]")]

    def server_properties(self, node_id: int, host: str, port: int,
                          controller_port: int) -> list[str]:
        """The listener, TLS, SASL and authorizer lines of node ``node_id``."""
        secret = self.password(BROKER_USER)
        scram = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
                 f'username="{BROKER_USER}" password="{secret}";')
        plain = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                 f'username="{BROKER_USER}" password="{secret}" user_{BROKER_USER}="{secret}";')
        # PLAIN over TLS too, with the same passwords, for librdkafka before 2.6.1 (Debian's
        # kcat): its SCRAM repeats the client nonce, which Kafka 4 refuses (the nonce has
        # been checked strictly since CVE-2024-56128; librdkafka's fix is its PR 4895)
        users = " ".join(f'user_{user}="{self.password(user)}"' for user in self.all_users)
        plain_clients = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                         f'username="{BROKER_USER}" password="{secret}" {users};')
        return [
            f"listeners=SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller_port}",
            f"advertised.listeners=SASL_SSL://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_SSL",
            "inter.broker.listener.name=SASL_SSL",
            f"sasl.enabled.mechanisms={','.join(SCRAM_MECHANISMS)},PLAIN",
            f"sasl.mechanism.inter.broker.protocol={CLIENT_MECHANISM}",
            *(f"listener.name.sasl_ssl.{m.lower()}.sasl.jaas.config={scram}"
              for m in SCRAM_MECHANISMS),
            f"listener.name.sasl_ssl.plain.sasl.jaas.config={plain_clients}",
            # SCRAM users live in the metadata the controllers serve: the controllers'
            # own listener authenticates the brokers with static PLAIN credentials
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={plain}",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.keystore(node_id)}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.ca_file}",
            "ssl.endpoint.identification.algorithm=https",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=" + ";".join(f"User:{user}" for user in self.super_users),
            "allow.everyone.if.no.acl.found=false",
        ]

    def client_settings(self, bootstrap: str, user: str = ADMIN) -> Settings:
        """The settings of a client connecting as ``user``."""
        # strings, as the environment would give them: pydantic parses each into its field's type
        fields: dict[str, Any] = {
            k.removeprefix("GRIDLINK_").lower(): v
            for k, v in self.client_env(bootstrap, user).items()
            if k != "GRIDLINK_KAFKA_BOOTSTRAP"}
        return Settings(kafka_bootstrap=bootstrap, **fields)

    def client_env(self, bootstrap: str, user: str) -> dict[str, str]:
        """``GRIDLINK_`` settings of a GridLink process connecting as ``user``."""
        return {"GRIDLINK_KAFKA_BOOTSTRAP": bootstrap,
                "GRIDLINK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "GRIDLINK_KAFKA_SASL_MECHANISM": CLIENT_MECHANISM,
                "GRIDLINK_KAFKA_USER": user,
                "GRIDLINK_KAFKA_PASSWORD_FILE": str(self.password_file(user)),
                "GRIDLINK_KAFKA_CA_FILE": str(self.ca_file),
                "GRIDLINK_COMMAND_SIGNING_KEY_FILE": str(self.signing_key_file)}

    def write_env_files(self, bootstrap: str, roles: dict[str, str]) -> dict[str, Path]:
        """``<role>.env`` per role (role → user), to source before ``gridlink …``."""
        written = {}
        for role, user in roles.items():
            path = self.directory / f"{role}.env"
            path.write_text("".join(f"{k}={v}\n"
                                    for k, v in self.client_env(bootstrap, user).items()))
            written[role] = path
        return written

    def missing_users(self, settings: Settings) -> list[str]:
        """Users of the table the running cluster has no SCRAM credentials for (a
        department added since the storage was formatted)."""
        from topics import clients

        admin = clients.admin(settings, client_id="gridlink-local")
        try:
            described = admin.describe_user_scram_credentials()
        finally:
            admin.close()
        known = set(described) if isinstance(described, dict) else set()
        return [user for user in self.all_users if user not in known]

    def add_users(self, settings: Settings, users: Sequence[str]) -> None:
        """Give ``users`` SCRAM credentials on the running cluster (both mechanisms)."""
        from kafka.admin import UserScramCredentialUpsertion

        from topics import clients

        self.prepare([])
        admin = clients.admin(settings, client_id="gridlink-local")
        try:
            errors = admin.alter_user_scram_credentials([
                UserScramCredentialUpsertion(user, mechanism, self.password(user))
                for user in users for mechanism in SCRAM_MECHANISMS])
        finally:
            admin.close()
        failed = {user: error for user, error in errors.items() if error}
        if failed:
            raise LocalKafkaError(f"could not add SCRAM users: {failed}")


def _secret_file(path: Path, content: str) -> None:
    """Write ``content`` to ``path`` readable by its owner only, unless it exists."""
    if path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(content if content.endswith("\n") else content + "\n")


def _is_ip(host: str) -> bool:
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class LocalKafka:
    """Where one local broker lives and how it listens."""

    data_dir: Path  # config, KRaft metadata and logs, pid file
    cache_dir: Path  # jars, shared by every local broker of this user
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int | None = None
    heap: str = "1g"
    node_id: int = 1
    cluster_voters: str | None = None  # "id@host:port,…" of its cluster; None: alone
    cluster_size: int = 1  # brokers of the cluster this node belongs to
    security: LocalSecurity | None = None  # None: PLAINTEXT, no authorizer

    @property
    def client(self) -> Settings | None:
        """Settings of an administrator's client of this node (None: plaintext)."""
        if self.security is None:
            return None
        return self.security.client_settings(self.bootstrap)

    @property
    def secured_marker(self) -> Path:
        return self.data_dir / SECURED_MARKER

    @property
    def jars_dir(self) -> Path:
        return self.cache_dir / f"kafka-{KAFKA_VERSION}" / "jars"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "kraft"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def _controller_port(self) -> int:
        return self.controller_port or self.port + 1

    @property
    def voters(self) -> str:
        """``controller.quorum.voters``: its cluster's, or this node alone."""
        alone = [(self.node_id, self._controller_port)]
        return self.cluster_voters or quorum_voters(self.host, alone)

    # ---- jars -------------------------------------------------------------

    def ensure_jars(self, *, echo=print) -> Path:
        """Fetch the broker's jars with Maven unless they are cached already."""
        marker = self.jars_dir / ".complete"
        if marker.exists():
            return self.jars_dir
        _require("java", "a Java runtime (17 or newer) runs the Kafka broker; "
                 "install one, e.g. `apt-get install openjdk-17-jre-headless`")
        _require("mvn", "Maven fetches the Kafka broker jars from Maven Central; "
                 "install it, e.g. `apt-get install maven`")
        echo(f"Fetching Apache Kafka {KAFKA_VERSION} jars with Maven into {self.jars_dir} …")
        partial = self.jars_dir.with_name("jars.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        cmd = [
            "mvn", "--batch-mode", "--quiet", "-f", str(POM),
            "dependency:copy-dependencies", "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise LocalKafkaError(f"Maven could not fetch the Kafka jars:\n{tail}")
        (partial / ".complete").write_text(KAFKA_VERSION + "\n")
        shutil.rmtree(self.jars_dir, ignore_errors=True)
        partial.rename(self.jars_dir)
        return self.jars_dir

    # ---- lifecycle --------------------------------------------------------

    def pid(self) -> int | None:
        """The broker's pid if it is running, else None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def up(self, *, fresh: bool = False, timeout_seconds: float = 90.0, echo=print) -> float:
        """Start the broker (idempotent). Returns seconds until it answered metadata."""
        if fresh:
            self.down(echo=echo)
            self.wipe()
        if self.pid() is not None:
            echo(f"Kafka is already running on {self.bootstrap} (pid {self.pid()}).")
            return 0.0
        self.check_ports_free()
        jars = self.ensure_jars(echo=echo)
        if self.security is not None:
            self.security.prepare([self.node_id])
        started = time.monotonic()
        proc = self.launch(jars)
        try:
            self.wait_ready(proc, timeout_seconds)
        except LocalKafkaError:
            self.down(echo=lambda *_: None)
            raise
        seconds = time.monotonic() - started
        echo(f"Kafka {KAFKA_VERSION} is up on {self.bootstrap} (pid {proc.pid}, "
             f"{seconds:.1f} s); logs in {self.log_dir}")
        return seconds

    def start(self, *, timeout_seconds: float = 90.0) -> float:
        """Start this node again on its data (after :meth:`kill`), quietly; returns
        seconds until it answered metadata."""
        return self.up(timeout_seconds=timeout_seconds, echo=lambda *_: None)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the running broker, as a fault test does: SIGKILL (``kill -9``)
        returns once the process is gone; SIGSTOP and SIGCONT freeze and thaw it."""
        pid = self.pid()
        if pid is None:
            raise LocalKafkaError(f"Kafka on {self.bootstrap} is not running")
        os.kill(pid, sig)
        if sig == signal.SIGKILL:
            while _alive(pid):
                time.sleep(0.02)
            self.pid_file.unlink(missing_ok=True)

    def wipe(self) -> None:
        """Remove the broker's data (it must be stopped)."""
        shutil.rmtree(self.storage_dir, ignore_errors=True)
        self.secured_marker.unlink(missing_ok=True)

    def check_ports_free(self) -> None:
        for port in (self.port, self._controller_port):
            if _port_open(self.host, port):
                raise LocalKafkaError(
                    f"port {port} on {self.host} is taken by another process; stop it or set "
                    "GRIDLINK_KAFKA_BOOTSTRAP (and GRIDLINK_KAFKA_CONTROLLER_PORT) to other ports"
                )

    def launch(self, jars: Path, *, cluster_id: str | None = None) -> subprocess.Popen:
        """Write the config, format storage if it is new (with ``cluster_id``, or a new
        id), and start the JVM detached; returns at once (see :meth:`wait_ready`)."""
        _require("java", "a Java runtime (17 or newer) runs the Kafka broker")
        self.check_security_matches()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.touch(mode=0o600)  # a secured node's holds the users' passwords
        self.config_file.chmod(0o600)
        self.config_file.write_text(self._server_properties())
        if self.cluster_id() is None:
            self._format(jars, cluster_id or new_cluster_id())
        out = open(self.log_dir / "kafka.out", "ab")
        proc = subprocess.Popen(
            [*self._java(jars), "kafka.Kafka", str(self.config_file)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc

    def check_security_matches(self) -> None:
        """Storage formatted with ``--secure`` holds its SCRAM users and expects TLS: it
        is started secured, and plaintext storage plaintext (``--fresh`` starts anew)."""
        if self.cluster_id() is None:
            return
        secured = self.secured_marker.exists()
        if secured and self.security is None:
            raise LocalKafkaError(f"{self.data_dir} was formatted with --secure: start it with "
                                  "`gridlink kafka up --secure`, or `--fresh` to wipe it")
        if not secured and self.security is not None:
            raise LocalKafkaError(f"{self.data_dir} was formatted without --secure: add "
                                  "`--fresh` to wipe it and start it secured")

    def cluster_id(self) -> str | None:
        """The KRaft cluster id this node's storage was formatted with, if it was."""
        try:
            text = (self.storage_dir / "meta.properties").read_text()
        except FileNotFoundError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "cluster.id":
                return value.strip()
        return None

    def down(self, *, grace_seconds: float = 30.0, echo=print) -> None:
        """Stop the broker: SIGTERM for a clean shutdown, SIGKILL after the grace period."""
        pid = self.pid()
        if pid is None:
            echo("Kafka is not running.")
            return
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)  # a frozen (kill -STOP) broker must run to stop
        deadline = time.monotonic() + grace_seconds
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            echo(f"Kafka (pid {pid}) did not stop within {grace_seconds:.0f} s; killing it.")
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        echo(f"Kafka (pid {pid}) stopped.")

    def status(self) -> dict[str, object]:
        pid = self.pid()
        return {
            "running": pid is not None,
            "pid": pid,
            "bootstrap": self.bootstrap,
            "secured": self.security is not None,
            "answers_metadata": pid is not None and _answers_metadata(self.bootstrap,
                                                                      self.client),
            "version": KAFKA_VERSION,
            "jars_cached": (self.jars_dir / ".complete").exists(),
            "data_dir": str(self.data_dir),
        }

    # ---- internals --------------------------------------------------------

    def _java(self, jars: Path) -> list[str]:
        return [
            "java", f"-Xmx{self.heap}", "-Xms256m", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.log_dir}",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp", f"{jars}/*",
        ]

    def _format(self, jars: Path, cluster_id: str) -> None:
        scram = self.security.scram_arguments() if self.security is not None else []
        result = subprocess.run(
            [*self._java(jars), "kafka.tools.StorageTool", "format",
             "-t", cluster_id, "-c", str(self.config_file), *scram],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            output = result.stdout + result.stderr
            for argument in scram:  # never a password in an error message
                output = output.replace(argument, "--add-scram …")
            raise LocalKafkaError(f"formatting KRaft storage failed:\n{output}")
        if self.security is not None:
            self.secured_marker.write_text("SASL_SSL, SCRAM users added at format time\n")

    def _server_properties(self) -> str:
        c = self._controller_port
        internal = replication_for(self.cluster_size)  # the broker's own topics
        if self.security is None:
            listeners = [
                f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{c}",
                f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
            ]
        else:
            listeners = self.security.server_properties(self.node_id, self.host, self.port, c)
        lines = [
            "# Written by `gridlink kafka up`; edits are overwritten.",
            "process.roles=broker,controller",
            f"node.id={self.node_id}",
            f"controller.quorum.voters={self.voters}",
            *listeners,
            f"log.dirs={self.storage_dir}",
            "num.partitions=1",
            # a secured cluster creates a topic only when asked by someone allowed to
            f"auto.create.topics.enable={'false' if self.security else 'true'}",
            f"offsets.topic.replication.factor={internal.factor}",
            "offsets.topic.num.partitions=8",
            f"transaction.state.log.replication.factor={internal.factor}",
            f"transaction.state.log.min.isr={internal.min_insync}",
            "transaction.state.log.num.partitions=4",
            f"share.coordinator.state.topic.replication.factor={internal.factor}",
            f"share.coordinator.state.topic.min.isr={internal.min_insync}",
            "group.initial.rebalance.delay.ms=0",
            # Kafka refuses a consumer session timeout below 6 s by default; a lower
            # GRIDLINK_SESSION_TIMEOUT_SECONDS moves a killed worker's partitions sooner
            "group.min.session.timeout.ms=1000",
            "log.retention.hours=168",
            "log.segment.bytes=268435456",
        ]
        if self.cluster_size > 1:
            lines += CLUSTER_PROPERTIES.format(replication=internal.factor).splitlines()
        return "\n".join([*lines, ""])

    def wait_ready(self, proc: subprocess.Popen, timeout_seconds: float) -> None:
        """Wait until the broker started as ``proc`` answers metadata requests."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalKafkaError(
                    f"the broker exited with code {proc.returncode}; see {self.log_dir}/kafka.out "
                    f"and {self.log_dir}/server.log"
                )
            if _port_open(self.host, self.port) and _answers_metadata(self.bootstrap,
                                                                      self.client):
                return
            time.sleep(0.2)
        raise LocalKafkaError(
            f"the broker did not answer on {self.bootstrap} within {timeout_seconds:.0f} s; "
            f"see {self.log_dir}/server.log"
        )


NODE_DIR_PREFIX = "node-"


@dataclass(frozen=True)
class LocalCluster:
    """Several local nodes, each a broker and a voter of one controller quorum.

    Node ``i`` (from 1) lives in ``<data_dir>/node-<i>``. A test reaches one node
    through :attr:`nodes` (or :meth:`node` by broker id) and can :meth:`LocalKafka.kill`
    it with any signal and :meth:`LocalKafka.start` it again on its data.
    """

    nodes: tuple[LocalKafka, ...]

    @classmethod
    def on_ports(cls, *, data_dir: Path, cache_dir: Path, ports: list[tuple[int, int]],
                 host: str = "127.0.0.1", heap: str = "512m",
                 security: LocalSecurity | None = None) -> LocalCluster:
        """One node per ``(broker port, controller port)``."""
        voters = quorum_voters(host, [(i, c) for i, (_, c) in enumerate(ports, start=1)])
        return cls(tuple(
            LocalKafka(data_dir=data_dir / f"{NODE_DIR_PREFIX}{i}", cache_dir=cache_dir,
                       host=host, port=port, controller_port=controller_port, heap=heap,
                       node_id=i, cluster_voters=voters, cluster_size=len(ports),
                       security=security)
            for i, (port, controller_port) in enumerate(ports, start=1)
        ))

    @classmethod
    def consecutive(cls, *, data_dir: Path, cache_dir: Path, brokers: int,
                    host: str = "127.0.0.1", port: int = 9092, controller_port: int | None = None,
                    heap: str = "512m", security: LocalSecurity | None = None) -> LocalCluster:
        """``brokers`` nodes from ``port`` on, two ports apart: with the defaults node 1
        on 9092 (controller 9093), node 2 on 9094 (9095), node 3 on 9096 (9097)."""
        first_controller = controller_port or port + 1
        ports = [(port + 2 * i, first_controller + 2 * i) for i in range(brokers)]
        return cls.on_ports(data_dir=data_dir, cache_dir=cache_dir, ports=ports, host=host,
                            heap=heap, security=security)

    @property
    def data_dir(self) -> Path:
        return self.nodes[0].data_dir.parent

    @property
    def bootstrap(self) -> str:
        """Every node's listener, comma-separated (GRIDLINK_KAFKA_BOOTSTRAP)."""
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def security(self) -> LocalSecurity | None:
        return self.nodes[0].security

    @property
    def client(self) -> Settings | None:
        """Settings of an administrator's client of the cluster (None: plaintext)."""
        security = self.security
        return security.client_settings(self.bootstrap) if security is not None else None

    def node(self, node_id: int) -> LocalKafka:
        """The node whose broker id is ``node_id`` (a partition's leader, for instance)."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(node_id)

    def running(self) -> list[LocalKafka]:
        return [node for node in self.nodes if node.pid() is not None]

    def formatted_nodes(self) -> list[int]:
        """Ids of the nodes whose storage exists in the data directory, this cluster's
        or not (a cluster formatted with more nodes leaves some behind)."""
        return formatted_nodes(self.data_dir)

    def up(self, *, fresh: bool = False, timeout_seconds: float = 120.0, echo=print) -> float:
        """Start every node that is not running (idempotent) and wait until each answers
        and the metadata lists every broker. Returns the seconds that took."""
        if fresh:
            self.down(echo=echo)
            for path in self.data_dir.glob(f"{NODE_DIR_PREFIX}*"):
                shutil.rmtree(path / "kraft", ignore_errors=True)
        extra = sorted(set(self.formatted_nodes()) - {n.node_id for n in self.nodes})
        if extra:
            raise LocalKafkaError(
                f"{self.data_dir} holds a cluster formatted with other nodes (node {extra[0]} "
                f"and more); start it with `--fresh` to wipe it, or with its own --brokers"
            )
        stopped = [node for node in self.nodes if node.pid() is None]
        if not stopped:
            echo(f"Kafka is already running: {len(self.nodes)} brokers on {self.bootstrap}.")
            return 0.0
        for node in stopped:
            node.check_ports_free()
        jars = self.nodes[0].ensure_jars(echo=echo)
        if self.security is not None:
            self.security.prepare([node.node_id for node in self.nodes])
        ids = {cid for node in self.nodes if (cid := node.cluster_id()) is not None}
        if len(ids) > 1:
            raise LocalKafkaError(f"the nodes in {self.data_dir} belong to different clusters "
                                  f"({', '.join(sorted(ids))}); start with `--fresh`")
        cluster_id = ids.pop() if ids else new_cluster_id()
        started = time.monotonic()
        launched = [(node, node.launch(jars, cluster_id=cluster_id)) for node in stopped]
        try:
            for node, proc in launched:
                node.wait_ready(proc, max(1.0, started + timeout_seconds - time.monotonic()))
            self.wait_brokers_registered(max(1.0, started + timeout_seconds - time.monotonic()))
        except LocalKafkaError:
            for node, _ in launched:
                node.down(echo=lambda *_: None)
            raise
        seconds = time.monotonic() - started
        pids = ", ".join(str(node.pid()) for node in self.nodes)
        echo(f"Kafka {KAFKA_VERSION} is up: {len(self.nodes)} brokers on {self.bootstrap} "
             f"(pids {pids}, {seconds:.1f} s); logs in {self.data_dir}/"
             f"{NODE_DIR_PREFIX}*/logs")
        if self.security is None:
            echo(f"Clients: GRIDLINK_KAFKA_BOOTSTRAP={self.bootstrap}")
        return seconds

    def wait_brokers_registered(self, timeout_seconds: float) -> None:
        """Wait until the cluster's metadata lists every node's broker."""
        want = {node.node_id for node in self.nodes}
        deadline = time.monotonic() + timeout_seconds
        seen: set[int] = set()
        while time.monotonic() < deadline:
            seen = set(broker_ids(self.bootstrap, self.client))
            if want <= seen:
                return
            time.sleep(0.2)
        raise LocalKafkaError(
            f"the metadata lists brokers {sorted(seen)} of {sorted(want)} after "
            f"{timeout_seconds:.0f} s; see {self.data_dir}/{NODE_DIR_PREFIX}*/logs/server.log"
        )

    def down(self, *, grace_seconds: float = 30.0, echo=print) -> None:
        """Stop every node: SIGTERM to all at once (one by one, the last would wait for
        a quorum that is gone), SIGKILL to those still running after the grace period."""
        running = [(node, pid) for node in self.nodes if (pid := node.pid()) is not None]
        if not running:
            echo("Kafka is not running.")
            return
        for _, pid in running:
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)  # a frozen (kill -STOP) node must run to stop
        deadline = time.monotonic() + grace_seconds
        while any(_alive(pid) for _, pid in running) and time.monotonic() < deadline:
            time.sleep(0.1)
        for node, pid in running:
            if _alive(pid):
                echo(f"Kafka node {node.node_id} (pid {pid}) did not stop within "
                     f"{grace_seconds:.0f} s; killing it.")
                os.kill(pid, signal.SIGKILL)
                while _alive(pid):
                    time.sleep(0.05)
            node.pid_file.unlink(missing_ok=True)
            echo(f"Kafka node {node.node_id} (pid {pid}) stopped.")

    def status(self) -> dict[str, object]:
        """The cluster's state, and each node's (under ``nodes``): whether it runs, answers
        requests itself, and is an unfenced broker in the cluster's metadata."""
        tls = self.security is not None
        answering = [node for node in self.nodes
                     if node.pid() is not None and _answers_requests(node.host, node.port,
                                                                     tls=tls)]
        registered = (broker_ids(",".join(n.bootstrap for n in answering), self.client)
                      if answering else [])
        nodes = [{
            "node": node.node_id,
            "running": node.pid() is not None,
            "pid": node.pid(),
            "bootstrap": node.bootstrap,
            "answers": node in answering,
            "in_metadata": node.node_id in registered,
            "data_dir": str(node.data_dir),
        } for node in self.nodes]
        return {
            "brokers": len(self.nodes),
            "bootstrap": self.bootstrap,
            "in_metadata": registered,
            "healthy": all(n["answers"] and n["in_metadata"] for n in nodes),
            "secured": tls,
            "version": KAFKA_VERSION,
            "jars_cached": (self.nodes[0].jars_dir / ".complete").exists(),
            "data_dir": str(self.data_dir),
            "nodes": nodes,
        }


def formatted_nodes(data_dir: Path) -> list[int]:
    """Ids of the cluster nodes whose KRaft storage is in ``data_dir`` (``node-<id>``)."""
    found = []
    for path in data_dir.glob(f"{NODE_DIR_PREFIX}*"):
        suffix = path.name.removeprefix(NODE_DIR_PREFIX)
        if suffix.isdigit() and (path / "kraft" / "meta.properties").exists():
            found.append(int(suffix))
    return sorted(found)


def _require(program: str, why: str) -> None:
    if shutil.which(program) is None:
        raise LocalKafkaError(f"`{program}` was not found on PATH: {why}.")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours still "exists"; reap it if it is ours
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``host`` now, for brokers (or other servers) to
    be started on: every socket is held open until all are chosen, so none is given
    twice."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for held in sockets:
            held.bind((host, 0))
        return [int(held.getsockname()[1]) for held in sockets]
    finally:
        for held in sockets:
            held.close()


def free_port(host: str = "127.0.0.1") -> int:
    """One port free on ``host`` now."""
    (port,) = free_ports(1, host)
    return port


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _admin(bootstrap: str, client: Settings | None) -> KafkaAdminClient:
    """An admin client of ``bootstrap`` from the one factory, as ``client`` (None:
    plaintext) connects."""
    from topics import clients

    settings = client or Settings(kafka_bootstrap=bootstrap, kafka_security_protocol="PLAINTEXT")
    return clients.admin(settings, bootstrap=bootstrap, request_timeout_ms=3000,
                         client_id="gridlink-local")


def _answers_metadata(bootstrap: str, client: Settings | None = None) -> bool:
    """True when the broker answers a metadata request (not just an open port)."""
    from kafka.errors import KafkaError

    try:
        admin = _admin(bootstrap, client)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def broker_ids(bootstrap: str, client: Settings | None = None, *,
               attempts: int = 3) -> list[int]:
    """Ids of the unfenced brokers the cluster's metadata lists (empty when nothing
    answers). Tried ``attempts`` times: the client may first ask a broker that has
    just died."""
    from kafka.errors import KafkaError

    for _ in range(attempts):
        try:
            admin = _admin(bootstrap, client)
        except (KafkaError, OSError, ValueError):
            continue
        try:
            return sorted(broker["broker_id"] for broker in admin.describe_cluster()["brokers"]
                          if not broker.get("is_fenced"))
        except (KafkaError, OSError):
            continue
        finally:
            admin.close()
    return []


def _answers_requests(host: str, port: int, timeout_seconds: float = 2.0, *,
                      tls: bool = False) -> bool:
    """True when the broker on ``host:port`` itself answers an ApiVersions request (v0,
    which every broker answers, before any authentication); a frozen (SIGSTOP) broker
    accepts the connection but does not answer. Unlike a client, this asks no other
    broker of the cluster. With ``tls`` the request goes over TLS (the certificate is
    not checked: only whether the broker answers)."""
    correlation_id = 7
    client_id = b"gridlink-status"
    request = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout_seconds) as raw:
            sock = raw
            if tls:
                context = ssl.create_default_context()
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                sock = context.wrap_socket(raw, server_hostname=host)
            sock.sendall(struct.pack(">i", len(request)) + request)
            header = b""
            while len(header) < 10:  # size, correlation id, error code
                chunk = sock.recv(10 - len(header))
                if not chunk:
                    return False
                header += chunk
    except OSError:
        return False
    _, answered_id, error_code = struct.unpack(">iih", header)
    return answered_id == correlation_id and error_code == 0
