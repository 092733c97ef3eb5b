"""A local single-node Apache Kafka (KRaft) for development, tests and the demo.

``gridlink kafka up`` fetches one pinned Kafka release's jars from Maven
Central with Maven (``kafka-pom.xml`` beside this file), caches them outside
the repository, formats KRaft storage once, starts a combined broker and
controller on 127.0.0.1, and waits until the broker answers metadata requests.
``down`` stops it cleanly (SIGTERM, then SIGKILL after a grace period).

Everything is real Apache Kafka; nothing here imitates a broker.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "4.1.1"
_HERE = Path(__file__).resolve().parent
POM = _HERE / "kafka-pom.xml"
LOG4J_CONFIG = _HERE / "kafka-log4j2.properties"


class LocalKafkaError(RuntimeError):
    """Something an operator must fix before the local broker can run."""


@dataclass(frozen=True)
class LocalKafka:
    """Where one local broker lives and how it listens."""

    data_dir: Path  # config, KRaft metadata and logs, pid file
    cache_dir: Path  # jars, shared by every local broker of this user
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int | None = None
    heap: str = "1g"

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
            shutil.rmtree(self.storage_dir, ignore_errors=True)
        if self.pid() is not None:
            echo(f"Kafka is already running on {self.bootstrap} (pid {self.pid()}).")
            return 0.0
        if _port_open(self.host, self.port):
            raise LocalKafkaError(
                f"port {self.port} on {self.host} is taken by another process; stop it or set "
                "GRIDLINK_KAFKA_BOOTSTRAP to another port"
            )
        jars = self.ensure_jars(echo=echo)
        _require("java", "a Java runtime (17 or newer) runs the Kafka broker")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._server_properties())
        started = time.monotonic()
        if not (self.storage_dir / "meta.properties").exists():
            self._format(jars)
        out = open(self.log_dir / "kafka.out", "ab")
        proc = subprocess.Popen(
            [*self._java(jars), "kafka.Kafka", str(self.config_file)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        self.pid_file.write_text(f"{proc.pid}\n")
        try:
            self._wait_ready(proc, timeout_seconds)
        except LocalKafkaError:
            self.down(echo=lambda *_: None)
            raise
        seconds = time.monotonic() - started
        echo(f"Kafka {KAFKA_VERSION} is up on {self.bootstrap} (pid {proc.pid}, "
             f"{seconds:.1f} s); logs in {self.log_dir}")
        return seconds

    def down(self, *, grace_seconds: float = 30.0, echo=print) -> None:
        """Stop the broker: SIGTERM for a clean shutdown, SIGKILL after the grace period."""
        pid = self.pid()
        if pid is None:
            echo("Kafka is not running.")
            return
        os.kill(pid, signal.SIGTERM)
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
            "answers_metadata": pid is not None and _answers_metadata(self.bootstrap),
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

    def _format(self, jars: Path) -> None:
        # KRaft wants the cluster id as a base64url-encoded UUID
        cid = "-"
        while cid.startswith("-"):  # a leading "-" would be read as an option
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            [*self._java(jars), "kafka.tools.StorageTool", "format",
             "-t", cid, "-c", str(self.config_file)],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise LocalKafkaError(f"formatting KRaft storage failed:\n{result.stdout}{result.stderr}")

    def _server_properties(self) -> str:
        c = self._controller_port
        return "\n".join([
            "# Written by `gridlink kafka up`; edits are overwritten.",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{self.host}:{c}",
            f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{c}",
            f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.storage_dir}",
            "num.partitions=1",
            "auto.create.topics.enable=true",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=4",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "log.segment.bytes=268435456",
            "",
        ])

    def _wait_ready(self, proc: subprocess.Popen, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalKafkaError(
                    f"the broker exited with code {proc.returncode}; see {self.log_dir}/kafka.out "
                    f"and {self.log_dir}/server.log"
                )
            if _port_open(self.host, self.port) and _answers_metadata(self.bootstrap):
                return
            time.sleep(0.2)
        raise LocalKafkaError(
            f"the broker did not answer on {self.bootstrap} within {timeout_seconds:.0f} s; "
            f"see {self.log_dir}/server.log"
        )


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


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _answers_metadata(bootstrap: str) -> bool:
    """True when the broker answers a metadata request (not just an open port)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()
