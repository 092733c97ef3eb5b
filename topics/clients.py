"""The one Kafka client factory: every client GridLink runs is made here.

Workers, the API, the command-line tools, the simulation and the test client all
ask this module for their producers, consumers and admin clients (aiokafka or
kafka-python), and the worker's Faust app for its broker credentials, so that
the connection and its security — ``GRIDLINK_KAFKA_BOOTSTRAP``,
``GRIDLINK_KAFKA_SECURITY_PROTOCOL`` (PLAINTEXT, SSL, SASL_PLAINTEXT,
SASL_SSL), ``GRIDLINK_KAFKA_SASL_MECHANISM`` (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512), the user and password (or password file), the CA file and the
client certificate and key — are read in one place and applied the same way
everywhere.

A caller passes only what is its own (client id, group, timeouts); a caller may
name other servers (``bootstrap=``: a benchmark's fresh broker), never another
security. TLS verifies the brokers' certificates and host names against the CA
file (or the system's CAs).
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from settings import Settings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient
    from faust.types.auth import CredentialsT
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer


class KafkaSecurityError(ValueError):
    """The security settings cannot be used (a file that cannot be read, for one)."""


def _tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def _sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol.startswith("SASL_")


@lru_cache(maxsize=8)
def _context(ca_file: Path | None, cert_file: Path | None,
             key_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if ca_file is not None:
            context.load_verify_locations(cafile=str(ca_file))
        if cert_file is not None:
            context.load_cert_chain(certfile=str(cert_file),
                                    keyfile=str(key_file) if key_file else None)
    except (OSError, ssl.SSLError) as error:
        raise KafkaSecurityError(f"cannot load the Kafka TLS files (CA {ca_file}, certificate "
                                 f"{cert_file}, key {key_file}): {error}") from None
    return context


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of every client (None without TLS): the CA file's (or the
    system's) trust, host names checked, and the client certificate if one is set."""
    if not _tls(settings):
        return None
    return _context(settings.kafka_ca_file, settings.kafka_cert_file, settings.kafka_key_file)


def _password(settings: Settings) -> str | None:
    try:
        return settings.kafka_sasl_password()
    except ValueError as error:
        raise KafkaSecurityError(str(error)) from None


def security_options(settings: Settings) -> dict[str, Any]:
    """The security keyword arguments aiokafka and kafka-python clients share (the two
    libraries name them alike)."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if _sasl(settings):
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_user,
                       sasl_plain_password=_password(settings))
    return options


def _servers(settings: Settings, bootstrap: str | None) -> list[str]:
    return [s.strip() for s in (bootstrap or settings.kafka_bootstrap).split(",") if s.strip()]


# -- aiokafka ---------------------------------------------------------------------------


def aio_producer(settings: Settings, *, bootstrap: str | None = None,
                 **options: Any) -> AIOKafkaProducer:
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(bootstrap_servers=_servers(settings, bootstrap),
                            **security_options(settings), **options)


def aio_consumer(settings: Settings, *topics: str, bootstrap: str | None = None,
                 **options: Any) -> AIOKafkaConsumer:
    from aiokafka import AIOKafkaConsumer

    options.setdefault("fetch_max_wait_ms", settings.kafka_fetch_wait_ms)
    return AIOKafkaConsumer(*topics, bootstrap_servers=_servers(settings, bootstrap),
                            **security_options(settings), **options)


def aio_admin(settings: Settings, *, bootstrap: str | None = None,
              **options: Any) -> AIOKafkaAdminClient:
    from aiokafka.admin import AIOKafkaAdminClient

    return AIOKafkaAdminClient(bootstrap_servers=_servers(settings, bootstrap),
                               **security_options(settings), **options)


# -- kafka-python -----------------------------------------------------------------------


def producer(settings: Settings, *, bootstrap: str | None = None,
             **options: Any) -> KafkaProducer:
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=_servers(settings, bootstrap),
                         **security_options(settings), **options)


def consumer(settings: Settings, *topics: str, bootstrap: str | None = None,
             **options: Any) -> KafkaConsumer:
    from kafka import KafkaConsumer

    return KafkaConsumer(*topics, bootstrap_servers=_servers(settings, bootstrap),
                         **security_options(settings), **options)


def admin(settings: Settings, *, bootstrap: str | None = None,
          **options: Any) -> KafkaAdminClient:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=_servers(settings, bootstrap),
                            **security_options(settings), **options)


# -- Faust ------------------------------------------------------------------------------


def faust_broker(settings: Settings) -> list[str]:
    """The Faust app's ``broker`` URLs."""
    return [f"kafka://{server}" for server in _servers(settings, None)]


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """The Faust app's ``broker_credentials`` (None for PLAINTEXT): Faust hands them to
    every aiokafka client it makes (its consumer, producer and topic creation)."""
    from faust.auth import SASLCredentials, SSLCredentials

    context = ssl_context(settings)
    if _sasl(settings):
        credentials = SASLCredentials(username=settings.kafka_user,
                                      password=_password(settings), ssl_context=context,
                                      mechanism=settings.kafka_sasl_mechanism)
        return credentials
    if context is not None:
        return SSLCredentials(context)
    return None


# -- for people ---------------------------------------------------------------------------


def describe(settings: Settings) -> str:
    """How clients connect, for a log line (never the password)."""
    protocol = settings.kafka_security_protocol
    who = (f" {settings.kafka_sasl_mechanism} as {settings.kafka_user}" if _sasl(settings)
           else " with a client certificate" if settings.kafka_cert_file else "")
    return f"{settings.kafka_bootstrap} over {protocol}{who}"


def librdkafka_properties(settings: Settings) -> dict[str, str]:
    """The same connection as librdkafka properties (``kcat -X key=value``, or a
    ``kcat -F`` file); the password is included, so keep the result out of logs."""
    properties = {"bootstrap.servers": settings.kafka_bootstrap,
                  "security.protocol": settings.kafka_security_protocol.lower()}
    if _tls(settings):
        if settings.kafka_ca_file is not None:
            properties["ssl.ca.location"] = str(settings.kafka_ca_file)
        properties["ssl.endpoint.identification.algorithm"] = "https"
        if settings.kafka_cert_file is not None and settings.kafka_key_file is not None:
            properties["ssl.certificate.location"] = str(settings.kafka_cert_file)
            properties["ssl.key.location"] = str(settings.kafka_key_file)
    if _sasl(settings):
        properties.update({"sasl.mechanisms": settings.kafka_sasl_mechanism,
                           "sasl.username": settings.kafka_user or "",
                           "sasl.password": _password(settings) or ""})
    return properties


__all__ = [
    "KafkaSecurityError",
    "admin",
    "aio_admin",
    "aio_consumer",
    "aio_producer",
    "consumer",
    "describe",
    "faust_broker",
    "faust_credentials",
    "librdkafka_properties",
    "producer",
    "security_options",
    "ssl_context",
]
