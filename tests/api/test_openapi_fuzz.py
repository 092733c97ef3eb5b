"""Every operation of the OpenAPI document, fuzzed (schemathesis: property-based, valid
and invalid inputs) against a real ``gridlink api`` process, with a worker, broker and
database behind it — as the administrator, as an operator and with a key nobody has:
no answer is a 5xx but 504 (the engine did not answer in time: an answer too).

Rate limits are raised for this module (the fuzzer sends thousands of changes a
minute); ``test_abuse`` holds them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.integration.conftest import GridlinkProcess
from topics.local_kafka import free_port

pytestmark = pytest.mark.integration

EXAMPLES = 20  # per operation and mode; about 60 operations
#: the keys each case is sent with: valid ones of two roles, and one that is no key
CALLERS = ("admin", "op-dongchangfu", None)


@pytest.fixture(scope="module")
def api_process(api_worker, api_env: dict[str, str], keys: dict[str, str],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``gridlink api`` on a free port, once it answers; yields its base URL."""
    port = free_port()
    env = {**api_env, "GRIDLINK_API_PORT": str(port), "GRIDLINK_API_HOST": "127.0.0.1",
           "GRIDLINK_API_RATE_PER_MINUTE": "1000000", "GRIDLINK_API_RATE_BURST": "100000"}
    process = GridlinkProcess(["api"], env, tmp_path_factory.mktemp("fuzz") / "api.log")
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert process.proc.poll() is None, process.log()[-3000:]
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, process.log()[-3000:]
            time.sleep(0.3)
        yield base
    finally:
        process.stop()


def _fuzz(operation, base: str, keys: dict[str, str], mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        for caller in CALLERS:
            key = keys[caller] if caller is not None else "fuzz-not-a-key"
            response = case.call(base_url=base, headers={"X-API-Key": key}, timeout=30)
            assert response.status_code < 500 or response.status_code == 504, (
                f"{case.method} {case.formatted_path} as {caller or 'an unknown key'}: "
                f"{response.status_code} {response.text[:500]}")
            if caller is None and case.method.upper() != "GET":
                assert response.status_code in (401, 413), response.text[:300]

    run()


def test_no_operation_answers_a_server_error(api_process: str, keys: dict[str, str]):
    schema = schemathesis.openapi.from_url(f"{api_process}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30  # the whole document, not a part of it
    failures = []
    for operation in operations:
        for mode in GenerationMode:  # valid inputs, then invalid ones
            try:
                _fuzz(operation, api_process, keys, mode)
            except Unsatisfiable:  # nothing in it to make invalid (GET /health)
                assert mode is GenerationMode.NEGATIVE, operation.path
            except AssertionError as failure:
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): "
                                f"{str(failure)[:800]}")
    assert not failures, "\n\n".join(failures)
