"""End-to-end fixtures: the real broker, a ``gridlink worker`` and ``gridlink api``
processes started as an operator starts them, and the system's Chromium driven by
Playwright (never a browser download)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from api.auth import Desk, write_demo_users
from tests.conftest import PROJECT_DIR
from tests.integration.conftest import (  # noqa: F401  (fixtures)
    GridlinkProcess,
    gridlink_env,
    kafka,
    settings,
    start_gridlink,
    worker,
)
from topics.local_kafka import free_port

ARTIFACTS = PROJECT_DIR / "artifacts"


@pytest.fixture
def users(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The users of the walk: the 东昌府区 operator, the desks of two townships, a wall."""
    path = tmp_path / "users.toml"
    keys = write_demo_users(path, departments=[], operator_regions={"op-dongchangfu": "371502"},
                            desks=[Desk("township-371502004-desk", "township", "371502004"),
                                   Desk("township-371502001-desk", "township", "371502001")],
                            displays={"wall": "371500"})
    return path, keys


@pytest.fixture
def api_url(worker, start_gridlink, users) -> Iterator[str]:  # noqa: F811
    """``gridlink api`` on a free port, with the walk's users, once it answers."""
    port = free_port()
    process: GridlinkProcess = start_gridlink("api", env={
        "GRIDLINK_USERS_FILE": str(users[0]), "GRIDLINK_API_PORT": str(port),
        "GRIDLINK_API_HOST": "127.0.0.1"})
    process.wait_for_log("Uvicorn running", timeout=90)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while httpx.get(f"{base}/health").status_code != 200:
        assert time.monotonic() < deadline, process.log()[-3000:]
        time.sleep(0.2)
    yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium for a module's tests (not the session's: Playwright's sync API
    keeps an event loop running in the main thread for as long as it is open)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("the browser tests need Debian's `chromium` on PATH (apt-get install "
                    "chromium; tools/system-packages installs it); Playwright's own browser "
                    "downloads are not used", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()
