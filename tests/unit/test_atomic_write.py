"""The atomic-write benchmark's simulated case engine and its statistics."""

from __future__ import annotations

from benchmarks.atomic_write import (
    DEPARTMENTS,
    EVENT_BYTES,
    INPUT_BYTES,
    decide,
    departments_of,
    ident_is_p1,
    input_id,
    input_value,
    percentiles,
)


def test_every_input_concerns_two_distinct_departments():
    for index in range(2000):
        first, second = departments_of(input_id("drain", index))
        assert first != second and 0 <= first < DEPARTMENTS and 0 <= second < DEPARTMENTS


def test_an_input_yields_three_events_for_its_partition_and_its_fan_out():
    outputs = decide(b"drain-7", 3, p1=False)
    assert [event.split(b"|")[:3] for event in outputs.events] == [
        [b"drain-7", b"1", b"3"], [b"drain-7", b"2", b"3"], [b"drain-7", b"3", b"3"]]
    assert all(len(event) == EVENT_BYTES for event in outputs.events)
    assert [dept for dept, _ in outputs.fan_out] == list(departments_of(b"drain-7"))
    assert decide(b"drain-7", 3, p1=False) == outputs  # deterministic
    alerted = decide(b"drain-10", 0, p1=True)
    assert [dept for dept, _ in alerted.fan_out][-1] is None  # a P1 input raises an alert


def test_one_input_in_ten_is_p1_and_inputs_have_their_size():
    assert sum(ident_is_p1(input_id("rate600", i)) for i in range(1000)) == 100
    assert len(input_value(b"drain-1", False)) == INPUT_BYTES


def test_percentiles_of_known_samples():
    figures = percentiles([float(v) for v in range(1, 1001)])
    assert figures == {"count": 1000, "p50": 501.0, "p99": 991.0, "p99.9": 1000.0,
                       "max": 1000.0}
    assert percentiles([])["p99"] is None
