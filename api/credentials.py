"""Secrets at rest (口令与密钥的存储): salted scrypt digests, and the SHA-256 digests of API
keys that users files written before scrypt still carry.

A stored credential reads ``scrypt$<n>$<r>$<p>$<salt>$<digest>`` (salt and digest in
unpadded URL-safe base64): the standard library's :func:`hashlib.scrypt`, a fresh
16-byte salt per secret, n = 2^14, r = 8, p = 1 (about 60 ms and 16 MiB to check one
secret on the machines the project is measured on). The parameters travel with each
digest, so raising them later leaves existing entries valid.

A legacy ``key_sha256`` is an unsalted SHA-256 of a random API key; it stays
accepted (the key is 192 random bits, so the digest cannot be guessed back) until
the user is given a new key with ``gridlink users rekey``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES, DIGEST_BYTES = 16, 32
_MAXMEM = 64 * 1024 * 1024
PREFIX = "scrypt"
KEY_ID_CHARS = 8  # the first characters of an API key, stored in clear to find its user


class MalformedDigest(ValueError):
    """A stored credential that is not ``scrypt$n$r$p$salt$digest``."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM,
                          dklen=DIGEST_BYTES)


def hash_secret(secret: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The stored form of a password or an API key (see the module docstring)."""
    salt = secrets.token_bytes(SALT_BYTES)
    return "$".join((PREFIX, str(n), str(r), str(p), _b64(salt),
                     _b64(_scrypt(secret, salt, n, r, p))))


def parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """(n, r, p, salt, digest) of a stored credential; :class:`MalformedDigest` otherwise."""
    parts = stored.split("$")
    try:
        if len(parts) != 6 or parts[0] != PREFIX:
            raise ValueError("expected scrypt$n$r$p$salt$digest")
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
            raise ValueError("n must be a power of two, r in 1..64, p in 1..16")
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
        if len(salt) < 8 or len(digest) < 16:
            raise ValueError("salt or digest too short")
    except ValueError as error:
        raise MalformedDigest(str(error)) from None
    return n, r, p, salt, digest


def verify_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` is the one ``stored`` was made from (constant-time compare)."""
    n, r, p, salt, digest = parse(stored)
    return hmac.compare_digest(_scrypt(secret, salt, n, r, p), digest)


@functools.cache
def _dummy() -> str:
    return hash_secret("no such user")


def burn_time() -> None:
    """Spend what a check costs, for an unknown user: a login answers as slowly either way."""
    verify_secret("no such user either", _dummy())


def sha256_hex(secret: str) -> str:
    """A legacy ``key_sha256`` digest."""
    return hashlib.sha256(secret.encode()).hexdigest()


def verify_sha256(secret: str, digest: str) -> bool:
    return hmac.compare_digest(sha256_hex(secret), digest.lower())


def new_key() -> str:
    """A fresh API key: 32 URL-safe characters (192 random bits)."""
    return secrets.token_urlsafe(24)


def key_id(key: str) -> str:
    """The part of an API key the users file keeps in clear, to find whose key it is
    without checking it against every user."""
    return key[:KEY_ID_CHARS]


__all__ = ["KEY_ID_CHARS", "MalformedDigest", "burn_time", "hash_secret", "key_id", "new_key",
           "parse", "sha256_hex", "verify_secret", "verify_sha256"]
