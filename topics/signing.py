"""Signed commands: a record on ``cases.commands`` says who may have written it.

A Kafka record does not say who produced it, and the case writers apply whatever
``cases.commands`` holds. With a signing key (``GRIDLINK_COMMAND_SIGNING_KEY`` or
``…_FILE``), everything GridLink writes there — the API's commands, intake's located
events, the timers' deadlines, the writers' follow-ups — carries an HMAC-SHA256 of its
key and value in the header ``gridlink-signature``, and a writer dead-letters an input
whose signature is missing or wrong instead of applying it. The ACLs keep other
principals from writing the topic at all; the signature also holds where they cannot
(a plaintext listener, a principal given too much).

Without a key (development on a plaintext broker) nothing is signed and nothing is
checked; on a secured cluster the API and the worker refuse to start without one.
With a key, a signed record in another partition than its writer's is dead-lettered
too (``wrong_partition``): GridLink places everything it signs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from settings import Settings

HEADER = "gridlink-signature"

Header = tuple[str, bytes]


class SigningKeyMissing(ValueError):
    """A process that writes or applies commands runs on a secured cluster unsigned."""


def key_for(settings: Settings) -> bytes | None:
    """The signing key of a process that writes or applies commands (the API, a worker):
    None on a plaintext broker without one (development); required on a secured
    cluster, where an unsigned command would be dead-lettered by every writer."""
    secret = settings.command_signing_secret()
    if secret is None and settings.kafka_secured:
        raise SigningKeyMissing(
            f"GRIDLINK_COMMAND_SIGNING_KEY or GRIDLINK_COMMAND_SIGNING_KEY_FILE is required with "
            f"GRIDLINK_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol}: the API and "
            "every worker sign and check cases.commands with the same key")
    return secret


def signature(secret: bytes, key: bytes | None, value: bytes) -> bytes:
    """The hex HMAC-SHA256 of a record's key (length-prefixed) and value."""
    key = key or b""
    message = len(key).to_bytes(4, "big") + key + value
    return hmac.new(secret, message, hashlib.sha256).hexdigest().encode()


def signed(secret: bytes | None, key: bytes | None, value: bytes,
           headers: Iterable[Header] = ()) -> list[Header]:
    """``headers`` with the record's signature added (as they are without a key)."""
    kept = [h for h in headers if h[0] != HEADER]
    if secret is None:
        return kept
    return [*kept, (HEADER, signature(secret, key, value))]


def problem(secret: bytes | None, key: bytes | None, value: bytes,
            headers: Iterable[Header]) -> tuple[str, str] | None:
    """Why a record may not be applied — ``(code, reason)`` — or None when it may:
    without a key everything may; with one, only a record signed with it."""
    if secret is None:
        return None
    found = [v for k, v in headers if k == HEADER]
    if not found:
        return ("unsigned_command", (f"no {HEADER} header: cases.commands takes only "
                                     "records signed by GridLink's API and workers"))
    if len(found) > 1 or not hmac.compare_digest(found[0] or b"", signature(secret, key, value)):
        return ("bad_signature", (f"the {HEADER} header does not match the record: it was "
                                  "signed with another key, or the record was changed after "
                                  "signing"))
    return None


__all__ = ["HEADER", "SigningKeyMissing", "key_for", "problem", "signature", "signed"]
