"""The one Kafka client factory: what each security setting makes of a client, and
that no module of GridLink builds a Kafka client any other way."""

from __future__ import annotations

import ast
import ssl
import subprocess
from pathlib import Path

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from pydantic import ValidationError

from settings import Settings
from tests.conftest import PROJECT_DIR
from topics import clients

CONSTRUCTORS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient", "KafkaProducer",
                "KafkaConsumer", "KafkaAdminClient", "App"}
#: every package GridLink runs, and the test clients that talk to a secured broker
GRIDLINK_CODE = ["agents", "api", "cli", "topics", "store", "simulation", "benchmarks",
                 "observability", "settings.py", "tests/integration/kafka_client.py",
                 "tests/faults/harness.py"]
#: an ADR's prototype of the alternatives (transactions), run on its own broker only
EXEMPT = {"topics/clients.py", "benchmarks/atomic_write.py"}


def _python_files() -> list[Path]:
    files: list[Path] = []
    for entry in GRIDLINK_CODE:
        path = PROJECT_DIR / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return [f for f in files if str(f.relative_to(PROJECT_DIR)) not in EXEMPT]


def _constructed(path: Path) -> set[str]:
    """Names of Kafka client classes (and ``faust.App``) called in ``path``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            name = (node.func.attr if isinstance(node.func, ast.Attribute)
                    else node.func.id if isinstance(node.func, ast.Name) else "")
            if name in CONSTRUCTORS:
                if name == "App" and not (isinstance(node.func, ast.Attribute)
                                          and getattr(node.func.value, "id", "") == "faust"):
                    continue
                found.add(name)
    return found


def test_every_kafka_client_comes_from_the_factory():
    made_elsewhere = {str(p.relative_to(PROJECT_DIR)): sorted(_constructed(p))
                      for p in _python_files() if _constructed(p)}
    assert made_elsewhere == {"agents/app.py": ["App"]}, made_elsewhere


def test_the_faust_app_takes_its_broker_and_credentials_from_the_factory():
    source = (PROJECT_DIR / "agents" / "app.py").read_text(encoding="utf-8")
    assert "broker=clients.faust_broker(settings)" in source
    assert "broker_credentials=clients.faust_credentials(settings)" in source


def test_plaintext_by_default():
    settings = Settings(kafka_bootstrap="k1:9092,k2:9092")
    assert clients.security_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert clients.faust_credentials(settings) is None
    assert clients.faust_broker(settings) == ["kafka://k1:9092", "kafka://k2:9092"]


def _pki(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a client certificate signed by it (openssl)."""
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "client.key",
                                                          "client.csr", "client.pem"))
    run = lambda *args: subprocess.run(["openssl", *args], check=True,  # noqa: E731
                                       capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", "/CN=test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=client")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2")
    return ca, cert, key


def test_sasl_ssl_with_scram_and_a_password_file(tmp_path: Path):
    ca, _, _ = _pki(tmp_path)
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
                        kafka_user="gridlink-worker", kafka_password_file=secret,
                        kafka_ca_file=ca)
    options = clients.security_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "gridlink-worker", "s3cret")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode is ssl.CERT_REQUIRED
    credentials = clients.faust_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert credentials.password == "s3cret" and credentials.ssl_context is context
    assert "s3cret" not in clients.describe(settings)
    assert clients.librdkafka_properties(settings) == {
        "bootstrap.servers": "127.0.0.1:9092", "security.protocol": "sasl_ssl",
        "ssl.ca.location": str(ca), "ssl.endpoint.identification.algorithm": "https",
        "sasl.mechanisms": "SCRAM-SHA-256", "sasl.username": "gridlink-worker",
        "sasl.password": "s3cret"}


def test_tls_with_a_client_certificate(tmp_path: Path):
    ca, cert, key = _pki(tmp_path)
    settings = Settings(kafka_security_protocol="SSL", kafka_ca_file=ca, kafka_cert_file=cert,
                        kafka_key_file=key)
    options = clients.security_options(settings)
    assert set(options) == {"security_protocol", "ssl_context"}
    assert isinstance(clients.faust_credentials(settings), SSLCredentials)
    assert "client certificate" in clients.describe(settings)


def test_sasl_plaintext_has_no_tls():
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
                        kafka_user="u", kafka_password="p")
    options = clients.security_options(settings)
    assert "ssl_context" not in options and options["sasl_mechanism"] == "PLAIN"


@pytest.mark.parametrize("fields, says", [
    ({"kafka_security_protocol": "SASL_SSL"}, "needs kafka_user"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_user": "u"}, "kafka_password"),
    ({"kafka_cert_file": "/c.pem"}, "go together"),
])
def test_incomplete_security_settings_are_refused_at_start(fields, says):
    with pytest.raises(ValidationError, match=says):
        Settings(**fields)


def test_unreadable_files_say_which_setting(tmp_path: Path):
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_user="u",
                        kafka_password_file=tmp_path / "missing")
    with pytest.raises(clients.KafkaSecurityError, match="GRIDLINK_KAFKA_PASSWORD_FILE"):
        clients.security_options(settings)
    bad_ca = tmp_path / "ca.pem"
    bad_ca.write_text("not a certificate")
    settings = Settings(kafka_security_protocol="SSL", kafka_ca_file=bad_ca)
    with pytest.raises(clients.KafkaSecurityError, match="cannot load the Kafka TLS files"):
        clients.ssl_context(settings)
