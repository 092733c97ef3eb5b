"""The operator's view: kcat (Debian's Kafka client) drives a running worker."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.integration.samples import valid_messages
from topics import registry


def _kcat(*args: str, stdin: bytes | None = None, timeout: float = 30) -> bytes:
    if shutil.which("kcat") is None:
        pytest.fail("kcat is not installed (Debian package kcat; tools/system-packages "
                    "installs it)")
    return subprocess.run(["kcat", *args], input=stdin, capture_output=True, check=True,
                          timeout=timeout).stdout


def test_kcat_lists_topics_produces_a_sample_and_reads_its_department_message(worker, kafka):
    broker = kafka.settings.kafka_bootstrap
    listing = _kcat("-b", broker, "-L").decode()
    for name in (registry.GRID_REPORTS, registry.DEAD_LETTER, registry.CASE_EVENTS,
                 "dept.chengguan"):
        assert f'"{kafka.settings.topic(name)}"' in listing

    topic, key, value = next(m for m in valid_messages() if b"GR-20261126-000102" in m[1])
    _kcat("-b", broker, "-P", "-t", kafka.settings.topic(topic), "-k", key.decode(), stdin=value)

    out = b""
    for _ in range(30):
        out = _kcat("-b", broker, "-C", "-t", kafka.settings.topic("dept.chengguan"), "-e", "-q",
                    "-f", "%k\t%s\n")
        if out.strip():
            break
    assert out.strip(), worker.log()[-3000:]
    case_key, payload = out.decode().splitlines()[0].split("\t", 1)
    message = json.loads(payload)
    assert message["case_id"] == case_key
    assert message["category"] == "05.03" and message["role"] == "lead"

    _kcat("-b", broker, "-P", "-t", kafka.settings.topic(topic), "-k", "x", stdin=b"not json")
    letters = []
    for _ in range(30):
        letters = _kcat("-b", broker, "-C", "-t", kafka.settings.topic(registry.DEAD_LETTER),
                        "-e", "-q").decode().splitlines()
        if letters:
            break
    assert json.loads(letters[0])["error"]["code"] == "not_json"
