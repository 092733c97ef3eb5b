"""Wire codecs for GridLink's own records (JSON via msgspec, on the hot path).

The three inbound formats are parsed by ``streams.parse``; everything GridLink
writes itself is one of the typed records of ``streams`` encoded here.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder] = {}


def encode(record: Any) -> bytes:
    return _encoder.encode(record)


def decode(data: bytes, type_: type[T]) -> T:
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    return decoder.decode(data)


_packer = msgspec.msgpack.Encoder()
_unpackers: dict[Any, msgspec.msgpack.Decoder] = {}


def pack(record: Any) -> bytes:
    """Compact binary form for state tables (their changelogs are internal)."""
    return _packer.encode(record)


def unpack(data: bytes, type_: type[T]) -> T:
    decoder = _unpackers.get(type_)
    if decoder is None:
        decoder = _unpackers[type_] = msgspec.msgpack.Decoder(type_)
    return decoder.decode(data)


def _writer_input() -> msgspec.json.Decoder:
    from streams.cases import AnyCommand
    from streams.records import LocatedEvent

    return msgspec.json.Decoder(AnyCommand | LocatedEvent)


_inputs: list[msgspec.json.Decoder] = []


def decode_input(data: bytes) -> Any:
    """One record of ``cases.commands``: a :class:`~streams.records.LocatedEvent` to triage
    or a case :class:`~streams.cases.Command` (told apart by their ``"type"``)."""
    if not _inputs:
        _inputs.append(_writer_input())
    return _inputs[0].decode(data)
