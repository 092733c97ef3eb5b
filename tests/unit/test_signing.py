"""Signed commands (topics/signing.py): what is accepted, what is dead-lettered and why.
The worker's refusal on a real broker is tried in tests/integration/test_secured_kafka.py."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from api.commands import CommandGateway
from settings import Settings
from streams.cases.commands import Supervise
from topics import signing

KEY = b"the-signing-key"
CASE = b"C20261126-371503001-0c700149"
VALUE = b'{"type":"supervise","case_id":"C20261126-371503001-0c700149"}'


def test_a_signed_record_is_accepted():
    headers = signing.signed(KEY, CASE, VALUE, [("traceparent", b"00-abc")])
    assert headers[0] == ("traceparent", b"00-abc")
    assert signing.problem(KEY, CASE, VALUE, headers) is None


@pytest.mark.parametrize("headers, code", [
    ([], "unsigned_command"),
    ([(signing.HEADER, b"")], "bad_signature"),
    (signing.signed(b"another-key", CASE, VALUE), "bad_signature"),
    (signing.signed(KEY, CASE, VALUE + b" "), "bad_signature"),  # the value changed
    (signing.signed(KEY, b"C-other", VALUE), "bad_signature"),  # moved to another case
    (signing.signed(KEY, CASE, VALUE) * 2, "bad_signature"),  # two signatures: which?
])
def test_an_unsigned_or_mis_signed_record_is_refused_with_its_reason(headers, code):
    found = signing.problem(KEY, CASE, VALUE, headers)
    assert found is not None and found[0] == code
    assert signing.HEADER in found[1]


def test_key_and_value_cannot_trade_bytes():
    assert signing.signature(KEY, b"ab", b"c") != signing.signature(KEY, b"a", b"bc")


def test_without_a_key_nothing_is_signed_or_checked():
    assert signing.signed(None, CASE, VALUE, [("traceparent", b"x")]) == [("traceparent", b"x")]
    assert signing.problem(None, CASE, VALUE, []) is None


def test_the_key_comes_from_a_setting_or_a_file(tmp_path):
    assert Settings().command_signing_secret() is None
    assert Settings(command_signing_key="k1").command_signing_secret() == b"k1"
    path = tmp_path / "key"
    path.write_text("k2\n")
    assert Settings(command_signing_key_file=path).command_signing_secret() == b"k2"
    with pytest.raises(ValueError, match="not both"):
        Settings(command_signing_key="k1", command_signing_key_file=path)
    with pytest.raises(ValueError, match="GRIDLINK_COMMAND_SIGNING_KEY_FILE"):
        Settings(command_signing_key_file=tmp_path / "missing").command_signing_secret()


class _Producer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_and_wait(self, topic: str, **record: Any) -> None:
        self.sent.append({"topic": topic, **record})


def test_the_api_signs_each_command_it_sends():
    channel = CommandGateway(Settings(command_signing_key="k1")).channel
    producer = _Producer()
    channel._producer = producer  # type: ignore[assignment]  # the record, not the broker
    channel.placement.partitions = 4
    command = Supervise(case_id=CASE.decode(), command_id="c1", actor="operator:li",
                        at=datetime(2026, 12, 7, 9, tzinfo=ZoneInfo("Asia/Shanghai")))
    asyncio.run(channel._send_command(command))
    (record,) = producer.sent
    assert record["topic"] == "cases.commands"
    assert signing.problem(b"k1", record["key"], record["value"], record["headers"]) is None


def test_a_secured_worker_or_api_needs_the_key():
    secured = {"kafka_security_protocol": "SASL_SSL", "kafka_user": "gridlink-worker",
               "kafka_password": "p"}
    with pytest.raises(signing.SigningKeyMissing, match="GRIDLINK_COMMAND_SIGNING_KEY"):
        signing.key_for(Settings(**secured))
    assert signing.key_for(Settings(**secured, command_signing_key="k")) == b"k"
    assert signing.key_for(Settings()) is None  # plaintext development
