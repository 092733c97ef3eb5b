"""Browser sessions (登录会话): a signed cookie, its CSRF token, and logout.

A session is a token the server signs, not a row it stores: any API process that
holds the same ``GRIDLINK_SESSION_SECRET`` reads it, so replicas need no shared
session store. The token is ``<payload>.<signature>``, both unpadded URL-safe
base64; the payload is JSON ``{"u": user name, "sid": 16 random bytes, "exp": expiry
(Unix seconds), "cred": a fingerprint of the user's stored credentials}``, the
signature HMAC-SHA256 over it. A token is refused once expired, when its signature
does not match, when the user is gone from the users file, or when the user's key
or password changed since it was issued (the fingerprint no longer matches).

The cookie (``gridlink_session``) is HttpOnly, SameSite=Strict, ``Path=/``, expires
with the token (``GRIDLINK_SESSION_HOURS``) and is Secure when
``GRIDLINK_COOKIE_SECURE`` is set (behind TLS).

CSRF: every form carries ``csrf_token`` = HMAC of the session id under the same
secret (a synchronizer token that needs no storage); scripts send it as
``X-CSRF-Token``. SameSite=Strict already keeps other sites' posts from carrying the
cookie; the token is the second fence.

Logout clears the cookie and revokes the session id in this process until the
token would have expired. Without ``GRIDLINK_SESSION_SECRET`` the secret is drawn
at start: sessions then end when the API restarts, and each replica has its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "gridlink_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    """A valid session: whose, its id and when it ends (Unix seconds)."""

    user: str
    sid: str
    expires: int
    credential: str


@dataclass
class SessionSigner:
    secret: bytes
    lifetime_seconds: int
    clock: Callable[[], float] = time.time  # injected by tests
    _revoked: dict[str, int] = field(default_factory=dict)

    def _now(self) -> float:
        return self.clock()

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self.secret, payload, hashlib.sha256).digest())

    def issue(self, user: str, credential: str) -> tuple[str, Session]:
        """A new session token for ``user`` (``credential``: its fingerprint now)."""
        session = Session(user=user, sid=_b64(secrets.token_bytes(16)),
                          expires=int(self._now()) + self.lifetime_seconds,
                          credential=credential)
        payload = json.dumps({"u": user, "sid": session.sid, "exp": session.expires,
                              "cred": credential}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{self._sign(payload)}", session

    def read(self, token: str | None) -> Session | None:
        """The session of a token, or None: malformed, forged, expired or revoked."""
        if not token or token.count(".") != 1:
            return None
        body, signature = token.split(".")
        try:
            payload = _unb64(body)
        except ValueError:
            return None
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            data = json.loads(payload)
            session = Session(user=str(data["u"]), sid=str(data["sid"]),
                              expires=int(data["exp"]), credential=str(data["cred"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires <= self._now() or session.sid in self._revoked:
            return None
        return session

    def revoke(self, session: Session) -> None:
        """Logout: this process refuses the session from now on."""
        now = self._now()
        self._revoked = {sid: until for sid, until in self._revoked.items() if until > now}
        self._revoked[session.sid] = session.expires

    def csrf_token(self, session: Session) -> str:
        return self._sign(b"csrf:" + session.sid.encode())

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token or "")


def signer_for(secret: str | None, hours: float) -> SessionSigner:
    """The app's signer: the configured secret, or one drawn now (see the module doc)."""
    key = secret.encode() if secret else secrets.token_bytes(32)
    return SessionSigner(secret=key, lifetime_seconds=int(hours * 3600))


__all__ = ["COOKIE", "CSRF_FIELD", "CSRF_HEADER", "Session", "SessionSigner", "signer_for"]
