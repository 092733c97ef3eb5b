"""The projection agent's write: a batch the database refuses is written again after a
capped, doubling wait until it is stored; a bug is not retried. (With a real broker and
a real PostgreSQL outage: tests/integration/test_projection_outage.py.)"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from agents import projection
from store.projector import ProjectionError


def value(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


class RefusingStore:
    """Refuses ``refusals`` writes as a database that is down does, then takes them;
    every attempt finds the same gap in one case's log."""

    def __init__(self, refusals: int, error: Exception | None = None) -> None:
        self.refusals = refusals
        self.error = error or OperationalError("INSERT …", {}, Exception("connection refused"))
        self.attempts = 0

    def project(self, events, *, on_gap=None) -> int:  # type: ignore[no-untyped-def]
        self.attempts += 1
        on_gap(ProjectionError("case C1: cannot apply event 3 after event 1"))
        if self.attempts <= self.refusals:
            raise self.error
        return len(events)


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between attempts, recorded instead of waited."""
    waited: list[float] = []

    async def pause(seconds: float, interrupted) -> None:  # type: ignore[no-untyped-def]
        waited.append(seconds)

    monkeypatch.setattr(projection, "_pause", pause)
    return waited


def write(store, interrupted=lambda: False):  # type: ignore[no-untyped-def]
    with ThreadPoolExecutor(max_workers=1) as writer:
        return asyncio.run(projection.write_until_stored(store, writer, ["e1", "e2"],
                                                         interrupted))


def test_a_refused_batch_is_written_again_after_a_doubling_capped_wait(pauses, caplog):
    retries = value("gridlink_projection_retries_total")
    gaps = value("gridlink_projection_gaps_total")
    store = RefusingStore(refusals=8)
    assert write(store) == 2
    assert store.attempts == 9
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert value("gridlink_projection_retries_total") == retries + 8
    assert value("gridlink_projection_gaps_total") == gaps + 1  # of the attempt stored only
    warnings = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(warnings) == 8
    assert "(OperationalError: connection refused); retrying in 0.5 s" in warnings[0]


def test_a_bug_is_not_retried(pauses):
    store = RefusingStore(refusals=1, error=KeyError("bug"))
    with pytest.raises(KeyError):
        write(store)
    assert store.attempts == 1 and pauses == []


def test_a_stopping_worker_leaves_the_batch_unwritten(pauses):
    stopping = False

    def interrupted() -> bool:
        return stopping

    store = RefusingStore(refusals=100)
    original = store.project

    def project(events, *, on_gap=None):  # type: ignore[no-untyped-def]
        nonlocal stopping
        stopping = store.attempts == 2  # the worker stops during the third attempt
        return original(events, on_gap=on_gap)

    store.project = project  # type: ignore[method-assign]
    assert write(store, interrupted) is None
    assert store.attempts == 3 and pauses == [0.5, 1.0]


def test_the_wait_ends_early_when_the_worker_stops():
    stop_at = time.monotonic() + 0.2
    started = time.monotonic()
    asyncio.run(projection._pause(30.0, lambda: time.monotonic() >= stop_at))
    assert time.monotonic() - started < 1.5
