"""GridLink's one settings object (配置).

Every setting is read from an environment variable with the ``GRIDLINK_``
prefix (``kafka_bootstrap`` ← ``GRIDLINK_KAFKA_BOOTSTRAP``) and documented in
``docs/configuration.md``, which ``cli/settings_doc.py`` writes from this class.
Nothing reads these at import time: entry points call ``Settings()`` once and
pass the object down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent
SHIPPED_RULES_DIR = PROJECT_DIR / "rules"
SHIPPED_REFERENCE_DIR = PROJECT_DIR / "reference" / "demo_city"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDLINK_", extra="ignore", frozen=True)

    # Kafka
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]"
    )
    topic_prefix: str = Field(
        "", description="prefix for every topic name (empty in production; tests isolate by it)"
    )
    app_id: str = Field("gridlink", description="Faust application id = consumer group")
    partitions: int = Field(4, ge=1, description="partitions of the ingest and case topics")
    replication: int | None = Field(
        None, ge=1, description="replication factor of created topics; unset: `gridlink topics "
        "create` decides by the cluster (topics.admin.replication_for), a worker's own get 1"
    )
    session_timeout_seconds: float = Field(
        10.0, gt=0, description="consumer session timeout: how fast a dead worker's partitions move"
    )
    shutdown_seconds: float = Field(
        25.0, gt=0, description="how long a worker drains on SIGTERM or Ctrl-C before it exits "
        "anyway (exit status 1): what it had not committed is read again by its partitions' "
        "next owner. Keep it under the supervisor's grace period (Kubernetes: 30 s)"
    )

    # Kafka security: every client GridLink runs is made with these (topics.clients)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how clients talk to the brokers: PLAINTEXT (development "
        "only), SSL (TLS, optionally with a client certificate), SASL_PLAINTEXT or SASL_SSL "
        "(a user and password, over TLS for SASL_SSL)"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism, with SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_user: str | None = Field(None, description="SASL user name (the Kafka principal)")
    kafka_password: SecretStr | None = Field(None, description="SASL password")
    kafka_password_file: Path | None = Field(
        None, description="a file holding the SASL password (instead of kafka_password)"
    )
    kafka_ca_file: Path | None = Field(
        None, description="PEM file of the CA that signed the brokers' certificates (unset: "
        "the system's trusted CAs)"
    )
    kafka_cert_file: Path | None = Field(
        None, description="PEM client certificate (mutual TLS), with kafka_key_file"
    )
    kafka_key_file: Path | None = Field(None, description="PEM private key of kafka_cert_file")
    kafka_fetch_wait_ms: int = Field(
        100, ge=1, le=1_500, description="longest a consumer's fetch waits on a broker for "
        "records; every fetch wait is one an idle partition can hold the others for "
        "(docs/adr/0003-fetch-wait.md), and each idle consumer fetches once per wait"
    )
    command_signing_key: SecretStr | None = Field(
        None, description="HMAC key that signs and verifies every record on cases.commands "
        "(topics.signing); required on a secured cluster"
    )
    command_signing_key_file: Path | None = Field(
        None, description="a file holding the command signing key (instead of "
        "command_signing_key)"
    )

    # Local development broker (`gridlink kafka up`)
    kafka_dir: Path = Field(
        Path("data/kafka"), description="local broker: config, KRaft data and logs"
    )
    kafka_cache_dir: Path = Field(
        Path.home() / ".cache" / "gridlink",
        description="where the broker jars fetched with Maven are cached (outside the repo)",
    )
    kafka_controller_port: int | None = Field(
        None, description="local broker's KRaft controller port (default: broker port + 1)"
    )
    kafka_heap: str | None = Field(
        None, description="local broker's JVM maximum heap (unset: 1g for one broker, 512m "
        "for each of several)"
    )

    # Tables of the stream agents (agents/tables.py)
    table_store: Literal["memory", "rocksdb"] = Field(
        "rocksdb", description="where a worker keeps its tables: in memory, recovered from their "
        "changelogs whenever it starts, or in RocksDB on local disk, where a restarted worker "
        "reads only what the changelogs got since"
    )
    state_dir: Path = Field(
        Path("data/state"), description="a worker keeps its tables in <state_dir>/<app_id>/<n>, "
        "the first n no other live worker on this host holds"
    )

    # Storage and data
    database_url: str = Field(
        "sqlite:///data/gridlink.db", description="SQLAlchemy URL of the SQL projection"
    )
    reference_dir: Path = Field(
        SHIPPED_REFERENCE_DIR, description="regions, grids, cameras, departments (CSV)"
    )
    rules_dir: Path = Field(
        SHIPPED_RULES_DIR, description="taxonomy, routing, SLA, keyword and code-map rule files"
    )
    locate_max_distance_m: float = Field(
        500.0, gt=0, description="coordinates farther than this from every grid centroid "
        "do not locate a grid"
    )

    # HTTP
    api_host: str = Field("127.0.0.1", description="address the REST API binds")
    api_port: int = Field(8000, ge=1, le=65535, description="REST API, live board and /metrics")
    users_file: Path | None = Field(
        None, description="TOML file of the API's users (role, scope, salted digests of keys and "
        "passwords); "
        "unset: the API refuses every request but /health and /metrics"
    )
    session_secret: SecretStr | None = Field(
        None, description="key that signs the console's session cookies and CSRF tokens; give "
        "every API replica the same one (unset: drawn at start, so sessions end at a restart)"
    )
    session_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="how long a console sign-in lasts (a shift)"
    )
    cookie_secure: bool = Field(
        False, description="mark the session cookie Secure (set it when the API is served "
        "over TLS)"
    )
    api_max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="largest request body the API reads; beyond it a "
        "413, refused while the body streams in, before anything is parsed"
    )
    api_rate_per_minute: float = Field(
        600.0, gt=0, description="changes (intake, actions) a minute each user may make; "
        "beyond it a 429 with Retry-After. Reads are not limited"
    )
    api_rate_burst: int = Field(
        60, ge=1, description="changes a user may make at once before api_rate_per_minute "
        "applies"
    )
    worker_metrics_port: int = Field(
        0, ge=0, le=65535,
        description="a worker's port for /metrics, /healthz and /readyz (0 = off)"
    )

    # Observability
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = Field(False, description="structured JSON logs")
    otel_exporter: Literal["none", "console", "otlp"] = Field(
        "none", description="where traces go"
    )
    otel_endpoint: str = Field("", description="OTLP endpoint when otel_exporter=otlp")

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_port(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and not self.kafka_user:
            raise ValueError(f"kafka_security_protocol {self.kafka_security_protocol} needs "
                             "kafka_user (and kafka_password or kafka_password_file)")
        if sasl and self.kafka_password is None and self.kafka_password_file is None:
            raise ValueError(f"kafka_security_protocol {self.kafka_security_protocol} needs "
                             "kafka_password or kafka_password_file")
        if (self.kafka_cert_file is None) != (self.kafka_key_file is None):
            raise ValueError("kafka_cert_file and kafka_key_file go together")
        if self.command_signing_key is not None and self.command_signing_key_file is not None:
            raise ValueError("give command_signing_key or command_signing_key_file, not both")
        return self

    @property
    def kafka_secured(self) -> bool:
        """Whether clients authenticate to a secured cluster (anything but PLAINTEXT)."""
        return self.kafka_security_protocol != "PLAINTEXT"

    def kafka_sasl_password(self) -> str | None:
        """The SASL password: ``kafka_password``, or the first line of its file."""
        if self.kafka_password is not None:
            return self.kafka_password.get_secret_value()
        if self.kafka_password_file is not None:
            return _first_line(self.kafka_password_file, "kafka_password_file")
        return None

    def command_signing_secret(self) -> bytes | None:
        """The command signing key, or None when none is configured."""
        if self.command_signing_key is not None:
            return self.command_signing_key.get_secret_value().encode()
        if self.command_signing_key_file is not None:
            return _first_line(self.command_signing_key_file, "command_signing_key_file").encode()
        return None

    @property
    def kafka_port(self) -> int:
        """Port of the first bootstrap server (the local broker listens there)."""
        return int(self.kafka_bootstrap.split(",")[0].rpartition(":")[2])

    @property
    def kafka_host(self) -> str:
        return self.kafka_bootstrap.split(",")[0].rpartition(":")[0]

    def local_kafka_heap(self, brokers: int = 1) -> str:
        """The JVM heap of each local broker when ``brokers`` of them run on this host."""
        return self.kafka_heap or ("1g" if brokers == 1 else "512m")

    def topic(self, name: str) -> str:
        """The physical topic name for a contract topic name."""
        return f"{self.topic_prefix}{name}"


class InvalidSettings(ValueError):
    """The environment's ``GRIDLINK_`` settings do not validate; the message names each one."""


def load_settings() -> Settings:
    """The settings from the environment, or :class:`InvalidSettings` naming every bad one
    by its variable (``GRIDLINK_API_PORT: Input should be less than or equal to 65535``)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            (f"GRIDLINK_{'_'.join(str(p) for p in err['loc']).upper()}: " if err["loc"]
             else "") + err["msg"]  # a rule across settings names them in its message
            for err in exc.errors()
        )
        raise InvalidSettings(f"invalid settings: {problems}") from None


def _first_line(path: Path, setting: str) -> str:
    """The secret a file holds: its first line, without the line break."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"GRIDLINK_{setting.upper()}: cannot read {path}: "
                         f"{error.strerror or error}") from None
    secret = text.splitlines()[0].strip() if text.strip() else ""
    if not secret:
        raise ValueError(f"GRIDLINK_{setting.upper()}: {path} is empty")
    return secret
