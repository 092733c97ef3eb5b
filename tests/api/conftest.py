"""API fixtures: a real broker, a real ``gridlink worker`` writing the SQL projection,
and the API app in-process (inside its lifespan) reading that same database.

One worker and one app serve a whole test module (a worker takes a while to
start); tests stay independent by reporting in different townships, so no two
tests' reports ever join one case.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import write_demo_users
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


@pytest.fixture(scope="module")
def keys(api_settings: Settings) -> dict[str, str]:
    """user name → API key: ``admin``, the operators of OPERATORS, ``<code>-desk``."""
    assert api_settings.users_file is not None
    return write_demo_users(api_settings.users_file, departments=sorted(load_city(api_settings.reference_dir).departments),
                            operator_regions=OPERATORS)


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
        return self.client.get(url, headers=self.headers, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.client.post(url, headers=self.headers, **kwargs)


@pytest.fixture(scope="module")
def api(client: TestClient, keys: dict[str, str]) -> Api:
    return Api(client, keys)


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
