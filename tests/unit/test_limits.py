"""The API's token buckets (api.limits.RateLimiter), on an injected clock."""

from __future__ import annotations

import pytest

from api.limits import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_goes_through_then_the_rate_applies() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.take("user:a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("user:a") == pytest.approx(1.0)  # one a second: a token in 1 s
    clock.now += 0.5
    assert limiter.take("user:a") == pytest.approx(0.5)  # a refused try takes no token
    clock.now += 0.5
    assert limiter.take("user:a") == 0.0
    assert limiter.take("user:a") == pytest.approx(1.0)


def test_each_caller_has_a_bucket_of_its_own_refilled_up_to_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=600, burst=2, clock=clock)
    assert [limiter.take("user:a") for _ in range(3)][-1] > 0
    assert limiter.take("user:b") == 0.0
    clock.now += 3600  # an hour idle refills to the burst, not beyond
    assert [limiter.take("user:a") for _ in range(3)] == [0.0, 0.0, pytest.approx(0.1)]
