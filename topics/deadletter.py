"""The dead-letter format: rejected input with its bytes and a reason.

A dead letter is JSON on ``ingest.dead-letter``, keyed by the source message's
key, carrying everything needed to fix and re-send the message::

    {"source_topic": "ingest.police-110", "partition": 0, "offset": 42,
     "key": "110-BAD-2", "error": {"code": "schema", "field": "xzqhbh",
     "reason": "xzqhbh: '37150' must be 6, 9 or 12 digits …"},
     "received_at": "2026-11-26T10:00:00.123+08:00",
     "raw_size": 211, "raw_base64": "eyJyZWZlcnJhbF9pZCI6…",
     "raw_text": "{\\"referral_id\\": …"}

``raw_base64`` is always the exact original bytes; ``raw_text`` is added when
they are valid UTF-8, for people reading the topic with kcat.
"""

from __future__ import annotations

import base64
from datetime import datetime

import msgspec


class DeadLetterError(msgspec.Struct, frozen=True):
    code: str
    reason: str
    field: str | None = None


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    source_topic: str
    partition: int
    offset: int
    key: str | None
    error: DeadLetterError
    received_at: datetime
    raw_size: int
    raw_base64: str
    raw_text: str | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DeadLetter)


def dead_letter(
    *, raw: bytes, key: bytes | None, topic: str, partition: int, offset: int,
    code: str, reason: str, field: str | None, received_at: datetime,
) -> bytes:
    """Encode one dead letter."""
    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return _encoder.encode(DeadLetter(
        source_topic=topic, partition=partition, offset=offset,
        key=key.decode("utf-8", errors="replace") if key is not None else None,
        error=DeadLetterError(code=code, reason=reason, field=field),
        received_at=received_at, raw_size=len(raw),
        raw_base64=base64.b64encode(raw).decode("ascii"), raw_text=text,
    ))


def decode_dead_letter(data: bytes) -> DeadLetter:
    return _decoder.decode(data)


def original_bytes(letter: DeadLetter) -> bytes:
    return base64.b64decode(letter.raw_base64)
