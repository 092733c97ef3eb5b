"""The OpenAPI document: every route documented with an example, and property-based
requests (Schemathesis) against the read-only routes never meet a server error.

The app runs in-process on an empty SQLite store; no broker is needed (the command
gateway is a stand-in that is never asked to send)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from api.auth import write_demo_users
from settings import Settings

OPERATOR = "op"
MAX_EXAMPLES = 6  # per route: enough to catch an unbounded parameter, quick
#: readiness answers 503 by design here (the stand-in gateway has no broker behind it);
#: it takes no parameters to fuzz, and tests/api/test_health.py tries it for real
NOT_FUZZED = {"/readyz"}


class _NoBroker:
    """A gateway for read-only requests: starting and stopping it does nothing."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    directory: Path = tmp_path_factory.mktemp("openapi")
    users = directory / "users.toml"
    keys = write_demo_users(users, departments=["chengguan"],
                            operator_regions={OPERATOR: "371502"})
    app = create_app(Settings(database_url=f"sqlite:///{directory / 'gridlink.db'}",
                              users_file=users), gateway=_NoBroker())  # type: ignore[arg-type]
    app.state.operator_key = keys[OPERATOR]
    return app


def _paginated(app: FastAPI) -> set[str]:
    """GET routes that take an ``offset``."""
    return {path for path, operations in app.openapi()["paths"].items()
            if any(p["name"] == "offset" for p in operations.get("get", {}).get("parameters", []))}


def _streams(app: FastAPI) -> set[str]:
    """GET routes answering an event stream (``text/event-stream``): they do not end, so
    they are no request-and-answer to fuzz."""
    return {path for path, operations in app.openapi()["paths"].items()
            if "text/event-stream" in str(operations.get("get", ""))}


def _fuzz_get_routes(app: FastAPI, *, paginated: bool) -> int:
    """A few generated requests per GET route, as an operator; returns the routes run.

    (Schemathesis' pytest fixture loader does not run on pytest 9, so each route runs
    its own Hypothesis test here.)"""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(method="GET")
    headers = {"X-API-Key": app.state.operator_key}
    chosen, streams = _paginated(app), _streams(app)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [o for o in operations
                  if (o.path in chosen) == paginated and o.path not in streams | NOT_FUZZED]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=(Phase.explicit, Phase.generate),  # no shrinking: fail fast
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case: Any) -> None:
            response = case.call(headers=headers)
            case.validate_response(response, checks=[not_a_server_error])

        no_server_error()
    return len(operations)


def test_read_only_routes_never_answer_a_server_error(app: FastAPI) -> None:
    assert _fuzz_get_routes(app, paginated=False) >= 8


def test_paginated_routes_never_answer_a_server_error(app: FastAPI) -> None:
    assert _fuzz_get_routes(app, paginated=True) >= 3


def test_an_offset_beyond_any_page_is_refused_not_a_server_error(app: FastAPI) -> None:
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/cases", params={"offset": 2**63},
                            headers={"X-API-Key": app.state.operator_key})
    assert answer.status_code == 422, answer.text


def test_every_route_is_documented_with_an_example(app: FastAPI) -> None:
    document = app.openapi()
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            if not operation.get("description") and not operation.get("summary"):
                missing.append(f"{where}: no description")
            for status, response in operation.get("responses", {}).items():
                if not response.get("description"):
                    missing.append(f"{where} {status}: no description")
            if not _has_example(document, operation):
                missing.append(f"{where}: no example of its answer")
    assert not missing, "\n".join(missing)


def _has_example(document: dict[str, Any], operation: dict[str, Any]) -> bool:
    """Every 2xx JSON answer of a declared shape (a model, an object with properties, a
    list of them) shows an example, itself or in the fields of its schema. Plain text,
    event streams and free-form maps (``/health``) have no shape to exemplify."""
    for status, response in operation.get("responses", {}).items():
        if not status.startswith("2"):
            continue
        content = response.get("content", {}).get("application/json")
        if content is None or "example" in content or "examples" in content:
            continue
        schema = content.get("schema", {})
        if _shaped(schema) and not _schema_has_example(document, schema, depth=0):
            return False
    return True


def _shaped(schema: dict[str, Any]) -> bool:
    items = schema.get("items")
    return "$ref" in schema or "properties" in schema or (bool(items) and _shaped(items))


def _schema_has_example(document: dict[str, Any], schema: dict[str, Any], *, depth: int) -> bool:
    if depth > 4 or not isinstance(schema, dict):
        return False
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    if "example" in schema or "examples" in schema:
        return True
    nested = [*schema.get("properties", {}).values(), schema.get("items", {}),
              *schema.get("anyOf", []), *schema.get("allOf", [])]
    return any(_schema_has_example(document, s, depth=depth + 1) for s in nested)
