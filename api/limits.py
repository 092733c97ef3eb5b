"""What the API checks before it reads a request's body (请求防护): who is calling, how
much they send, and how often.

:class:`RequestGuard` wraps the whole app (pure ASGI, so nothing is read early):

1. **The key first.** A change (any method but GET, HEAD, OPTIONS) is authenticated
   before its body is read: an unknown key, or neither a key nor a valid session
   cookie, is a 401, not a parse. The sign-in form and the console's pages are
   exempt: they answer a person with the sign-in page.
2. **Size.** A declared ``Content-Length`` over ``api_max_body_bytes`` is a 413 at
   once; a body that streams in without one is counted as it arrives, and reading
   stops the moment it passes the limit: the answer is a 413, whatever the route
   made of the part it got.
3. **Rate.** Each caller has a token bucket of ``api_rate_burst`` changes, refilled
   at ``api_rate_per_minute``; an empty bucket is a 429 with ``Retry-After``. The
   caller is the user; before sign-in (the ``/login`` form), the client's address.
   Reads are not limited: a desk's page polls, and reading changes nothing.

Everything refused is a problem-details body (:mod:`api.errors`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import COOKIE, Directory, session_user
from api.errors import NotAuthenticated, problem

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: changes a person makes before signing in, or whose page answers with the sign-in page
OPEN_PATHS = ("/login", "/logout", "/console")
BUCKETS_KEPT = 50_000  # callers remembered; the least recently seen go first


class RateLimiter:
    """Token buckets by caller: ``burst`` at once, refilled at ``per_minute``."""

    def __init__(self, per_minute: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """0 if ``caller`` may go on now (a token is taken), else the seconds until a
        token is back."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.per_second)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.per_second
            self._buckets[caller] = (tokens - 1.0 if wait == 0.0 else tokens, now)
            while len(self._buckets) > BUCKETS_KEPT:
                self._buckets.popitem(last=False)
        return wait


class RequestGuard:
    """The ASGI middleware of this module's checks."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, limiter: RateLimiter) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        seen = 0
        over = False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request" and not over:
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:  # read no more: the answer will be a 413
                    over = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def answered(message: Message) -> None:
            if not over:
                await send(message)
            elif message["type"] == "http.response.start":  # whatever the app made of the
                await self._too_large(request)(scope, receive, send)  # cut body: a 413

        await self.app(scope, counted, answered)

    def _refusal(self, request: Request) -> Response | None:
        caller = None if request.method in SAFE_METHODS else self._caller(request)
        if isinstance(caller, NotAuthenticated):
            return problem(request, status=401, title="Not authenticated",
                           detail=caller.reason, code=caller.code, reason=caller.reason,
                           headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'})
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return self._too_large(request)
        if caller is None:
            return None
        wait = self.limiter.take(caller)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            detail = (f"too many changes from {caller.removeprefix('user:')}: at most "
                      f"{self.limiter.burst:.0f} at once and "
                      f"{self.limiter.per_second * 60:.0f} a minute; try again in "
                      f"{seconds} s")
            return problem(request, status=429, title="Too many requests", detail=detail,
                           code="rate_limited", reason=detail,
                           headers={"Retry-After": str(seconds)})
        return None

    def _caller(self, request: Request) -> str | NotAuthenticated:
        """Who makes this change (``user:<name>``, or ``address:<ip>`` before sign-in);
        a refusal if an API key is unknown, or if nothing identifies a caller who must
        be identified."""
        directory: Directory = request.app.state.users
        authorization = request.headers.get("authorization", "")
        key = request.headers.get("x-api-key") or (
            authorization[7:].strip() if authorization[:7].lower() == "bearer " else None)
        if not key and COOKIE in request.cookies:
            signed_in = session_user(request)
            if signed_in is not None:
                return f"user:{signed_in[0].name}"
        if not key and request.url.path.startswith(OPEN_PATHS):
            return f"address:{request.client.host if request.client else 'unknown'}"
        try:
            return f"user:{directory.authenticate(key).name}"
        except NotAuthenticated as refused:  # no key, an unknown one, or no users at all
            return refused

    def _too_large(self, request: Request) -> Response:
        detail = (f"the request body is larger than {self.max_body_bytes:,} bytes "
                  "(GRIDLINK_API_MAX_BODY_BYTES); send less, or split it")
        return problem(request, status=413, title="Request body too large", detail=detail,
                       code="body_too_large", reason=detail, headers={"Connection": "close"})


__all__ = ["RateLimiter", "RequestGuard"]
