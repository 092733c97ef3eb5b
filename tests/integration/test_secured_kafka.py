"""A secured cluster, as `gridlink kafka up --secure` runs it, and the ACL table applied by
`gridlink topics create`: tried with kcat and the principals' real credentials.

One broker for the module (SASL_SSL, SCRAM users added when its storage is formatted, the
StandardAuthorizer), started and stopped with the ``gridlink`` command. Every allowed path
is tried and works; the paths the table does not grant are tried and the broker refuses
them. GridLink's own processes connect with SCRAM-SHA-512 through the one client factory.

kcat links librdkafka, whose SCRAM before 2.6.1 sends a nonce Kafka 4 refuses (librdkafka
PR 4895); with such a kcat the same users authenticate with PLAIN over the same TLS
listener, which the broker also enables. The ACLs are the same whichever mechanism
authenticated the principal.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from kafka.errors import TopicAuthorizationFailedError

from api.auth import write_demo_users
from settings import Settings
from streams.reference import load_city
from tests.conftest import PROJECT_DIR, SAMPLES_DIR
from tests.integration.conftest import GridlinkProcess
from topics import acls, clients, signing
from topics.admin import bindings
from topics.local_kafka import free_ports
from topics.placement import case_partition
from topics.registry import jurisdictions

pytestmark = pytest.mark.integration

REPORT_TO_SIFA = "GR-20261126-000101"  # P2, lead sifa, support township 371503001
REPORT_P1 = "GR-20261126-000103"  # P1, lead xiaofang: a command alert
TOWNSHIP = "371503001"  # the township the first report lies in
OTHER_TOWNSHIP = "371502004"
REFUSED_TOPIC = "Topic authorization failed"
REFUSED_GROUP = "Group authorization failed"


def _gridlink(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    """``gridlink <args>`` as an operator runs it; its output (it must succeed)."""
    result = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=PROJECT_DIR,
                            env={**os.environ, **env}, capture_output=True, text=True,
                            timeout=timeout, check=False)
    assert result.returncode == 0, f"gridlink {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _librdkafka_version(kcat: str) -> tuple[int, ...]:
    said = subprocess.run([kcat, "-V"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", said)
    assert found, "kcat -V does not say its librdkafka version"
    return tuple(int(part) for part in found.groups())


@dataclass
class Secured:
    """The module's secured broker: where it listens, its CA, the principals' passwords."""

    bootstrap: str
    ca_file: Path
    users_dir: Path
    env_files: dict[str, Path]  # role (admin, worker, api) → its GRIDLINK_ env file
    base_env: dict[str, str]  # where the local broker lives (kafka dir, ports)
    kcat: str
    kcat_mechanism: str
    printed: str  # what `gridlink kafka up --secure` printed

    def password(self, user: str) -> str:
        return (self.users_dir / f"{user}.password").read_text().strip()

    def process_env(self, role: str) -> dict[str, str]:
        return {**self.base_env, **_env_file(self.env_files[role])}

    def settings(self, role: str) -> Settings:
        env = _env_file(self.env_files[role])
        return Settings(**{k.removeprefix("GRIDLINK_").lower(): v for k, v in env.items()})

    def _kcat_args(self, user: str, password: str | None) -> list[str]:
        return [self.kcat, "-b", self.bootstrap, "-X", "security.protocol=SASL_SSL",
                "-X", f"sasl.mechanisms={self.kcat_mechanism}",
                "-X", f"sasl.username={user}",
                "-X", f"sasl.password={password or self.password(user)}",
                "-X", f"ssl.ca.location={self.ca_file}", "-X", "socket.timeout.ms=10000"]

    def write(self, user: str, topic: str, key: str, value: str,
              password: str | None = None,
              headers: dict[str, str] | None = None,
              partition: int | None = None) -> subprocess.CompletedProcess[str]:
        """kcat producing one record as ``user``; exits 1 when it is not delivered."""
        extra = [a for k, v in (headers or {}).items() for a in ("-H", f"{k}={v}")]
        extra += ["-p", str(partition)] if partition is not None else []
        return subprocess.run([*self._kcat_args(user, password), "-P", "-t", topic, "-k", key,
                               *extra],
                              input=value + "\n", capture_output=True, text=True, timeout=60,
                              check=False)

    def read(self, user: str, topic: str) -> subprocess.CompletedProcess[str]:
        """kcat reading ``topic`` from its beginning to its end as ``user`` (no group)."""
        return subprocess.run([*self._kcat_args(user, None), "-C", "-t", topic,
                               "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n"],
                              capture_output=True, text=True, timeout=60, check=False)

    def read_in_group(self, user: str, group: str, topic: str,
                      until: str | None = None, timeout: float = 30) -> tuple[int | None, str]:
        """kcat reading ``topic`` in consumer group ``group`` as ``user``: its exit code
        (None when stopped because ``until`` appeared, or at ``timeout``) and output."""
        log = self.users_dir.parent / f"kcat-{user}-{group}-{time.monotonic_ns()}.log"
        with log.open("w") as out:
            proc = subprocess.Popen([*self._kcat_args(user, None), "-G", group, topic,
                                     "-o", "beginning", "-e", "-q"], stdout=out,
                                    stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                output = log.read_text(errors="replace")
                if until is not None and until in output:
                    return None, output
                if proc.poll() is not None:
                    return proc.returncode, log.read_text(errors="replace")
                time.sleep(0.1)
            return None, log.read_text(errors="replace")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("these tests need kcat (the `kcat` package) on PATH to try the ACLs "
                    "from outside GridLink's own clients", pytrace=False)
    port, controller = free_ports(2)
    kafka_dir = tmp_path_factory.mktemp("secured") / "kafka"
    base = {"GRIDLINK_KAFKA_DIR": str(kafka_dir),
            "GRIDLINK_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
            "GRIDLINK_KAFKA_CONTROLLER_PORT": str(controller),
            "GRIDLINK_KAFKA_HEAP": "512m", "GRIDLINK_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    printed = _gridlink(base, "kafka", "up", "--secure")
    secure = kafka_dir / "secure"
    mechanism = ("SCRAM-SHA-512" if _librdkafka_version(kcat) >= (2, 6, 1) else "PLAIN")
    try:
        yield Secured(bootstrap=f"127.0.0.1:{port}", ca_file=secure / "ca.pem",
                      users_dir=secure / "users",
                      env_files={role: secure / f"{role}.env" for role in ("admin", "worker",
                                                                           "api")},
                      base_env=base, kcat=kcat, kcat_mechanism=mechanism, printed=printed)
    finally:
        _gridlink(base, "kafka", "down")


@pytest.fixture(scope="module")
def topics_created(secured: Secured) -> str:
    """``gridlink topics create`` as the administrator: the topics and the ACL table."""
    return _gridlink(secured.process_env("admin"), "topics", "create")


def test_kafka_up_secure_prints_the_client_settings(secured: Secured):
    for line in ("GRIDLINK_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
                 "GRIDLINK_KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
                 f"GRIDLINK_KAFKA_BOOTSTRAP={secured.bootstrap}",
                 f"GRIDLINK_KAFKA_CA_FILE={secured.ca_file}"):
        assert line in secured.printed
    worker = _env_file(secured.env_files["worker"])
    assert worker["GRIDLINK_KAFKA_USER"] == acls.WORKER
    assert Path(worker["GRIDLINK_KAFKA_PASSWORD_FILE"]).stat().st_mode & 0o077 == 0


def test_kafka_status_knows_the_broker_is_secured(secured: Secured):
    """``status`` finds the storage formatted --secure and asks the broker over TLS as
    the administrator (it exits 1 when the broker does not answer)."""
    status = dict(line.split(None, 1) for line in
                  _gridlink(secured.base_env, "kafka", "status").splitlines() if " " in line)
    assert status["secured"].strip() == "True"
    assert status["answers_metadata"].strip() == "True"


def test_nothing_is_served_without_credentials(secured: Secured):
    """A plaintext client finds no plaintext listener; a wrong password is refused."""
    refused = secured.write("grid-platform", "ingest.grid-reports", "x", "{}",
                            password="not-the-password")
    assert refused.returncode != 0
    assert "Authentication failed" in refused.stderr, refused.stderr
    plaintext = subprocess.run([secured.kcat, "-b", secured.bootstrap, "-L", "-m", "5"],
                               capture_output=True, text=True, timeout=30,
                               check=False)
    assert plaintext.returncode != 0


def test_topics_create_applies_the_whole_table_once(secured: Secured, topics_created: str):
    settings = secured.settings("admin")
    city = load_city(settings.reference_dir)
    table = acls.table(settings, city.departments, jurisdictions(city))
    assert f"ACLs: {len(bindings(table))} bindings created, 0 already existed" in topics_created
    again = _gridlink(secured.process_env("admin"), "topics", "create")
    assert f"ACLs: 0 bindings created, {len(bindings(table))} already existed" in again


@pytest.mark.parametrize("system, topic", sorted(acls.PRODUCERS.items()))
def test_each_outside_system_writes_its_own_ingest_topic(secured: Secured, topics_created: str,
                                                         system: str, topic: str):
    written = secured.write(system, topic, f"probe-{system}", '{"probe": true}')
    assert written.returncode == 0, written.stderr


@pytest.mark.parametrize("user, topic", [
    ("grid-platform", "cases.commands"),  # a forged command
    ("xueliang", "cases.commands"),
    ("grid-platform", "ingest.police-110"),  # another system's ingest topic
    ("police-110", "ingest.camera-alerts"),
    ("xueliang", "ingest.grid-reports"),
    ("police-110", "cases.events"),
    ("dept-sifa", "cases.commands"),  # a department acts through the API, never Kafka
    ("dept-sifa", "dept.gongan"),
    ("command-center", "command.alerts"),
    ("gridlink-api", "cases.events"),  # only the worker writes the case log
])
def test_writes_the_table_does_not_grant_are_refused(secured: Secured, topics_created: str,
                                                     user: str, topic: str):
    refused = secured.write(user, topic, "forged", '{"type": "close", "actor": "root"}')
    assert refused.returncode != 0
    assert REFUSED_TOPIC in refused.stderr, refused.stderr


@pytest.mark.parametrize("user, topic", [
    ("dept-chengguan", "dept.gongan"),  # another department's queue
    ("dept-sifa", "dept.township"),
    (f"dept-township-{TOWNSHIP}", f"dept.township.{OTHER_TOWNSHIP}"),  # another township's
    (f"dept-township-{TOWNSHIP}", "dept.township"),  # the whole department's queue
    ("command-center", "cases.events"),
    ("grid-platform", "ingest.grid-reports"),  # a producer reads nothing
    ("dept-sifa", "ingest.dead-letter"),
])
def test_reads_the_table_does_not_grant_are_refused(secured: Secured, topics_created: str,
                                                    user: str, topic: str):
    refused = secured.read(user, topic)
    assert REFUSED_TOPIC in refused.stderr, refused.stderr
    assert refused.stdout == ""


def test_a_department_may_not_use_another_principals_group(secured: Secured,
                                                           topics_created: str):
    _, output = secured.read_in_group("dept-sifa", "dept-gongan", "dept.sifa",
                                         until=REFUSED_GROUP)
    assert REFUSED_GROUP in output, output


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The worker's state and the database the worker projects and the API reads."""
    return tmp_path_factory.mktemp("secured-work")


def _database(workdir: Path) -> dict[str, str]:
    return {"GRIDLINK_DATABASE_URL": f"sqlite:///{workdir / 'gridlink.db'}"}


@pytest.fixture(scope="module")
def worker(secured: Secured, topics_created: str, workdir: Path) -> Iterator[GridlinkProcess]:
    """``gridlink worker`` as gridlink-worker (SCRAM-SHA-512 over TLS)."""
    env = {**secured.process_env("worker"), **_database(workdir),
           "GRIDLINK_STATE_DIR": str(workdir / "state")}
    process = GridlinkProcess(["worker"], env, workdir / "worker.log")
    try:
        process.wait_for_log("Worker]: Ready", timeout=120)
        yield process
    finally:
        process.stop()


def _sample(report_id: str) -> str:
    for line in (SAMPLES_DIR / "grid-reports.valid.jsonl").read_text().splitlines():
        if json.loads(line)["report_id"] == report_id:
            return line
    raise AssertionError(f"no sample {report_id}")


def _read_until(secured: Secured, user: str, topic: str, text: str,
                timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        result = secured.read(user, topic)
        assert result.returncode == 0, f"{user} reading {topic}: {result.stderr}"
        if text in result.stdout or time.monotonic() > deadline:
            return result.stdout
        time.sleep(1)


def test_a_report_becomes_a_case_over_sasl_ssl(secured: Secured, worker: GridlinkProcess):
    """The grid platform writes a report; the worker (SCRAM) opens a case; the lead
    department, the township's unit and the command center read what is theirs."""
    assert "Authenticated as gridlink-worker via SCRAM-SHA-512" in worker.log()
    for report in (REPORT_TO_SIFA, REPORT_P1):
        sent = secured.write("grid-platform", "ingest.grid-reports", report, _sample(report))
        assert sent.returncode == 0, sent.stderr

    lead = _read_until(secured, "dept-sifa", "dept.sifa", REPORT_TO_SIFA)
    assert REPORT_TO_SIFA in lead and '"department":"sifa"' in lead
    case_id = json.loads(lead.splitlines()[-1].split("\t", 1)[1])["case_id"]
    unit = _read_until(secured, f"dept-township-{TOWNSHIP}", f"dept.township.{TOWNSHIP}",
                       case_id)
    assert case_id in unit
    assert secured.read(f"dept-township-{OTHER_TOWNSHIP}",
                        f"dept.township.{OTHER_TOWNSHIP}").stdout == ""
    alerts = _read_until(secured, "command-center", "command.alerts", "P1")
    assert '"priority":"P1"' in alerts

    _, output = secured.read_in_group("dept-sifa", "dept-sifa", "dept.sifa",
                                         until=case_id)
    assert case_id in output, output

    # the API's principal reads the case log through the one factory (SCRAM) ...
    api = secured.settings("api")
    consumer = clients.consumer(api, "cases.events", group_id=None,
                                auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        events = [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()
    assert any(e["type"] == "case_opened" and e["case_id"] == case_id for e in events)
    # ... and may not write it
    producer = clients.producer(api, acks="all", max_block_ms=10_000)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send("cases.events", b'{"type": "case_closed"}').get(timeout=20)
    finally:
        producer.close()


def _supervise(case_id: str, command_id: str) -> str:
    """A 督办 command as an intruder would forge it: the engine would apply it."""
    return json.dumps({"type": "supervise", "case_id": case_id, "command_id": command_id,
                       "actor": "administrator:root", "at": "2026-12-07T09:00:00+08:00",
                       "note": "forged"}, separators=(",", ":"))


def test_only_signed_commands_are_applied(secured: Secured, worker: GridlinkProcess):
    """Even a principal allowed to write cases.commands (the administrator here) gets a
    command applied only when it is signed with GridLink's key and in its writer's
    partition; unsigned, mis-signed or misplaced, it is dead-lettered with the reason,
    and the case does not change."""
    lead = _read_until(secured, "dept-sifa", "dept.sifa", REPORT_TO_SIFA)
    case_id = json.loads(lead.splitlines()[-1].split("\t", 1)[1])["case_id"]
    key = _env_file(secured.env_files["worker"])["GRIDLINK_COMMAND_SIGNING_KEY_FILE"]
    secret = Path(key).read_text().strip().encode()
    unsigned, forged, misplaced, genuine = (
        _supervise(case_id, f"probe-{n}") for n in ("unsigned", "forged", "misplaced",
                                                     "genuine"))
    partitions = secured.settings("admin").partitions
    place = case_partition(case_id, partitions)

    def sign(value: str, secret: bytes = secret) -> dict[str, str]:
        return {signing.HEADER: signing.signature(secret, case_id.encode(),
                                                  value.encode()).decode()}

    for value, headers, partition in (
            (unsigned, None, place), (forged, sign(forged, b"not-the-key"), place),
            (misplaced, sign(misplaced), (place + 1) % partitions),
            (genuine, sign(genuine), place)):
        sent = secured.write(acls.ADMIN, "cases.commands", case_id, value, headers=headers,
                             partition=partition)
        assert sent.returncode == 0, sent.stderr

    events = _read_until(secured, acls.ADMIN, "cases.events", "probe-genuine")
    assert '"command_id":"probe-genuine"' in events and '"type":"supervised"' in events
    for refused in ("probe-unsigned", "probe-forged", "probe-misplaced"):
        assert refused not in events
    dead = _read_until(secured, acls.ADMIN, "ingest.dead-letter", "wrong_partition")
    reasons = {json.loads(line.split("\t", 1)[1])["error"]["code"]
               for line in dead.splitlines() if line.startswith(case_id)}
    assert reasons == {"unsigned_command", "bad_signature", "wrong_partition"}, dead


@pytest.fixture(scope="module")
def api(secured: Secured, worker: GridlinkProcess,
        workdir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``gridlink api`` as gridlink-api: its base URL and its users' API keys."""
    (port,) = free_ports(1)
    users = workdir / "users.toml"
    settings = secured.settings("api")
    keys = write_demo_users(users, departments=load_city(settings.reference_dir).departments,
                            operator_regions={})
    env = {**secured.process_env("api"), **_database(workdir),
           "GRIDLINK_USERS_FILE": str(users), "GRIDLINK_API_PORT": str(port)}
    process = GridlinkProcess(["api"], env, workdir / "api.log")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.proc.poll() is None, process.log()[-4000:]
            assert time.monotonic() < deadline, process.log()[-4000:]
            time.sleep(0.5)
        yield url, keys
    finally:
        process.stop()


def test_an_api_command_is_signed_and_carries_the_authenticated_user(
        secured: Secured, api: tuple[str, dict[str, str]]):
    """The API (gridlink-api over SASL_SSL) sends a signed command the worker applies,
    and answers from cases.replies; its actor is the caller's user, whatever the body
    says."""
    url, keys = api
    lead = _read_until(secured, "dept-sifa", "dept.sifa", REPORT_TO_SIFA)
    case_id = json.loads(lead.splitlines()[-1].split("\t", 1)[1])["case_id"]
    deadline = time.monotonic() + 60
    while True:  # the projection may not have the case yet
        answer = httpx.post(f"{url}/cases/{case_id}/supervise", timeout=30,
                            headers={"X-API-Key": keys["admin"]},
                            json={"note": "催办", "actor": "administrator:root"})
        if answer.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert answer.status_code == 200, answer.text
    command_id = answer.json()["command_id"]
    assert answer.json()["seqs"], answer.text
    events = [json.loads(line.split("\t", 1)[1]) for line in
              _read_until(secured, acls.ADMIN, "cases.events", command_id).splitlines()]
    (supervised,) = [e for e in events if e.get("command_id") == command_id]
    assert supervised["type"] == "supervised"
    assert supervised["actor"] == "administrator:admin"
