"""API fixtures: a real broker, a real ``gridlink worker`` writing the SQL projection,
and the API app in-process (inside its lifespan) reading that same database.

One worker and one app serve a whole test module (a worker takes a while to
start); tests stay independent by reporting in different townships, so no two
tests' reports ever join one case.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import Desk, write_demo_users
from settings import Settings
from streams.reference import load_city
from tests.integration.conftest import GridlinkProcess
from tests.integration.kafka_client import KafkaTestClient

OPERATORS = {"op-dongchangfu": "371502", "op-chiping": "371503"}


@pytest.fixture(scope="module")
def api_env(kafka_broker, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    directory = tmp_path_factory.mktemp("api")
    return {
        "GRIDLINK_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "GRIDLINK_TOPIC_PREFIX": f"t{run}.",
        "GRIDLINK_APP_ID": f"gridlink-test-{run}",
        "GRIDLINK_DATABASE_URL": f"sqlite:///{directory / 'gridlink.db'}",
        "GRIDLINK_PARTITIONS": "2",
        "GRIDLINK_USERS_FILE": str(directory / "users.toml"),
    }


@pytest.fixture(scope="module")
def api_settings(api_env: dict[str, str]) -> Settings:
    return Settings(**{key.removeprefix("GRIDLINK_").lower(): value
                       for key, value in api_env.items()})


#: desks with a jurisdiction: two townships of 东昌府区, and 城管 of two counties
DESKS = [Desk("township-371502004-desk", "township", "371502004"),  # 新区街道
         Desk("township-371502001-desk", "township", "371502001"),  # 古楼街道
         Desk("chengguan-371502-desk", "chengguan", "371502"),  # 东昌府区
         Desk("chengguan-371503-desk", "chengguan", "371503")]  # 茌平区
DISPLAYS = {"wall": "371500"}


@pytest.fixture(scope="module")
def keys(api_settings: Settings) -> dict[str, str]:
    """user name → API key: ``admin``, the operators of OPERATORS, ``<code>-desk``, the
    desks of DESKS and the displays of DISPLAYS."""
    assert api_settings.users_file is not None
    departments = sorted(load_city(api_settings.reference_dir).departments)
    return write_demo_users(api_settings.users_file, departments=departments,
                            operator_regions=OPERATORS, desks=DESKS, displays=DISPLAYS)


@pytest.fixture(scope="module")
def api_worker(api_env: dict[str, str], api_settings: Settings,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[GridlinkProcess]:
    kafka = KafkaTestClient(api_settings)
    kafka.create_topics()
    kafka.close()
    process = GridlinkProcess(["worker"], api_env, tmp_path_factory.mktemp("logs") / "worker.log")
    try:
        process.wait_for_log("Worker]: Ready", timeout=90)
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(api_worker: GridlinkProcess, api_settings: Settings,
           keys: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings), raise_server_exceptions=False) as test_client:
        yield test_client


class Api:
    """The test client as one user at a time: ``api.as_("chengguan-desk").post(...)``."""

    def __init__(self, client: TestClient, keys: dict[str, str]) -> None:
        self.client, self.keys = client, keys

    def as_(self, user: str) -> _UserClient:
        return _UserClient(self.client, self.keys[user])


class _UserClient:
    def __init__(self, client: TestClient, key: str) -> None:
        self.client, self.headers = client, {"X-API-Key": key}

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, headers={**self.headers, **kwargs.pop("headers", {})},
                               **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.client.post(url, headers={**self.headers, **kwargs.pop("headers", {})},
                                **kwargs)


@pytest.fixture(scope="module")
def api(client: TestClient, keys: dict[str, str]) -> Api:
    return Api(client, keys)


def sign_in(client: Any, name: str, secret: str) -> str:
    """Sign ``client`` (a test client or an httpx client keeping cookies) in on the
    console's page; returns the page it lands on."""
    form = client.get("/login")
    assert form.status_code == 200, form.text
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post("/login", data={"login_token": token.group(1), "name": name,
                                         "secret": secret, "next": ""},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"])


def eventually(probe: Callable[[], Any], *, timeout: float = 40.0, what: str = "") -> Any:
    """``probe()`` once it returns something truthy, polling until ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture(scope="session")
def grid_report_sample(samples_dir: Path) -> str:
    return (samples_dir / "grid-reports.valid.jsonl").read_text(encoding="utf-8").splitlines()[1]
