"""Departments and a command center that act, through the REST API (``--departments``).

:class:`Actors` is the thin HTTP side of :mod:`simulation.behaviour`. It polls
each department's queue (``GET /departments/{code}/queue``) with that
department's key, and the command center's work — the verification queue and
the returned, handled and checking cases — with an operator's key; for each
new assignment or case it asks :mod:`simulation.behaviour` what to do and
when, and sends each step as the API call a person would make. The API's
answer decides: an accepted step is counted and the next one planned; a
``409`` (the case moved on: re-routed, cancelled …) ends that plan, and the
queue shows later whether anything is left to do.

Each assignment and case draws from its own ``random.Random`` seeded with the
run's seed and its ids, so one seed gives the same choices whatever the order
the API answers in. Steps are sent by a small thread pool; ``run`` returns
when its stop event is set.

The keys come from a file of ``name key`` lines, as ``gridlink demo`` writes
them (``data/demo/keys.txt``): ``<department>-desk`` users act for their
department; the operator is a command-center user.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from clock import wall_clock
from simulation.behaviour import (
    LATE,
    SLOW,
    Action,
    CaseView,
    Pace,
    after_command_center_action,
    after_department_action,
    case_view,
    extension_decision,
    next_command_center_action,
    next_department_action,
    plan_work,
    work_from,
)

DESK_SUFFIX = "-desk"
OPERATOR_PREFERENCE = ("op-city", "admin")
WORKING = ("dispatched", "accepted", "in_progress")  # the queue statuses a desk acts on
COMMAND_CENTER = ("returned", "handled", "checking")  # besides the verification queue
PAGE = 200
MAX_PAGES = 20
SKIPPED = -1  # a planned step found unnecessary when its time came
REMEMBERED = 50_000  # assignments and cases remembered (plan rounds, the operator's steps)


class ActorsError(Exception):
    """The actors cannot start: no keys, no API, or keys the API does not know."""


class Transport(Protocol):
    """One HTTP call as user ``key``: the status code and the decoded JSON body (0 and
    the error's text when the API could not be reached)."""

    def __call__(self, method: str, path: str, *, key: str,
                 params: Mapping[str, Any] | None = None,
                 json_body: Mapping[str, Any] | None = None) -> tuple[int, Any]: ...


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


RATE_LIMITED_TRIES = 5  # a 429 is waited out (its Retry-After) this many times


def _patient(send: Callable[..., tuple[int, Any, float | None]]) -> Transport:
    """A transport that waits out a 429 (the API's rate limit) as its Retry-After says,
    as a well-behaved client does, then tries again."""

    def call(method: str, path: str, *, key: str, params: Mapping[str, Any] | None = None,
             json_body: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        for _ in range(RATE_LIMITED_TRIES):
            status, body, retry_after = send(method, path, key=key, params=params,
                                             json_body=json_body)
            if status != 429:
                break
            time.sleep(retry_after or 1.0)
        return status, body

    return call


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def urllib_transport(base_url: str, *, timeout_seconds: float = 30.0) -> Transport:
    """The API at ``base_url`` (``http://127.0.0.1:8000``) over the standard library."""
    base = base_url.rstrip("/")

    def send(method: str, path: str, *, key: str, params: Mapping[str, Any] | None = None,
             json_body: Mapping[str, Any] | None = None) -> tuple[int, Any, float | None]:
        query = f"?{urllib.parse.urlencode(params, doseq=True)}" if params else ""
        data = json.dumps(json_body).encode() if json_body is not None else None
        request = urllib.request.Request(
            base + path + query, data=data, method=method,
            headers={"X-API-Key": key, "Accept": "application/json",
                     **({"Content-Type": "application/json"} if data is not None else {})})
        try:
            with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
                return response.status, _decode(response.read()), None
        except urllib.error.HTTPError as error:
            return (error.code, _decode(error.read()),
                    _seconds(error.headers.get("Retry-After")))
        except (OSError, TimeoutError) as error:
            return 0, str(error), None

    return _patient(send)


def client_transport(client: Any) -> Transport:
    """Any client with httpx's ``request(method, url, headers=, params=, json=)``:
    ``httpx.Client(base_url=…)``, or FastAPI's ``TestClient`` in tests."""

    def send(method: str, path: str, *, key: str, params: Mapping[str, Any] | None = None,
             json_body: Mapping[str, Any] | None = None) -> tuple[int, Any, float | None]:
        response = client.request(method, path, headers={"X-API-Key": key},
                                  params=dict(params) if params else None, json=json_body)
        return (response.status_code, _decode(response.content),
                _seconds(response.headers.get("Retry-After")))

    return _patient(send)


def load_keys(path: Path) -> dict[str, str]:
    """User name → API key from ``name key`` lines (``#`` comments and blank lines skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ActorsError(f"cannot read the keys file {path}: {error.strerror or error}; "
                          "`gridlink demo` writes one (data/demo/keys.txt)") from None
    keys: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, key = line.partition(" ")
        if not key.strip():
            raise ActorsError(f"{path} line {number}: expected 'name key'")
        keys[name] = key.strip()
    return keys


def desks_of(keys: Mapping[str, str]) -> dict[str, str]:
    """Department code → key, from the city-wide ``<department>-desk`` users (desks with
    a jurisdiction, ``township-<code>-desk`` or ``<department>-<county>-desk``, see only
    part of their department's queue and are left to people)."""
    return {code: key for name, key in keys.items() if name.endswith(DESK_SUFFIX)
            and "-" not in (code := name.removesuffix(DESK_SUFFIX))}


def operator_of(keys: Mapping[str, str], name: str | None = None) -> str | None:
    """The command-center user to act as: ``name``, else ``op-city``, else ``admin``,
    else the first ``op-…`` user; None if there is none."""
    if name is not None:
        if name not in keys:
            raise ActorsError(f"no key for user {name!r} in the keys file")
        return name
    for candidate in OPERATOR_PREFERENCE:
        if candidate in keys:
            return candidate
    return next((n for n in keys if n.startswith("op-")), None)


# -- counting ------------------------------------------------------------------------------

_LABELS = (  # counter → how the progress line names it
    ("claim", "claimed"), ("return", "returned"), ("on-site", "on site"),
    ("progress", "progress notes"), ("extension", "extensions asked"), ("handle", "handled"),
    ("support-done", "support done"), ("register", "registered"), ("reroute", "re-routed"),
    ("rule", "ruled"), ("check", "checked"), ("close", "closed"), ("rework", "rework"),
    ("evaluate", "evaluated"),
)
_DETAILS = {  # counter → its sub-counters and their names
    "extension": (("extension:approved", "approved"), ("extension:denied", "denied")),
    "evaluate": (("evaluate:satisfied", "满意"), ("evaluate:basically_satisfied", "基本满意"),
                 ("evaluate:dissatisfied", "不满意"), ("evaluate:unreached", "未接通")),
}


@dataclass
class Tally:
    """What the actors did: accepted steps by verb (``claim:late``, ``evaluate:satisfied``),
    steps the engine refused (409) and calls that failed."""

    counts: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    failed: int = 0
    reasons: deque[str] = field(default_factory=lambda: deque(maxlen=5))  # the last refusals

    def count(self, action: Action, at: datetime) -> None:
        self.counts[action.verb] += 1
        if action.window is not None:
            timing = action.window.timing(at)
            if timing in (LATE, SLOW):
                self.counts[f"{action.verb}:{timing}"] += 1
        if action.verb == "evaluate" and action.body:
            self.counts[f"evaluate:{action.body['result']}"] += 1
        if action.verb == "approve-extension" and action.body:
            self.counts["extension:approved" if action.body["approved"]
                        else "extension:denied"] += 1

    @property
    def late(self) -> int:
        return sum(n for verb, n in self.counts.items() if verb.endswith(":" + LATE))

    def line(self) -> str:
        """``claimed 12 (2 late, 1 yellow), returned 1, …, late 3, refused 0, failed 0``."""
        parts = []
        for key, label in _LABELS:
            details = _DETAILS.get(key, ((f"{key}:{LATE}", "late"), (f"{key}:{SLOW}", "yellow")))
            notes = ", ".join(f"{self.counts[k]} {name}" for k, name in details if self.counts[k])
            parts.append(f"{label} {self.counts[key]}" + (f" ({notes})" if notes else ""))
        parts.append(f"late {self.late}, refused {self.refused}, failed {self.failed}")
        return ", ".join(parts)


# -- the actors ------------------------------------------------------------------------------


@dataclass
class _Plan:
    who: str  # "desk" | "center" | "extension"
    key: str  # the API key to act with
    subject: Any  # Work | CaseView | the assignment id (extension)
    case_id: str
    action: Action
    rng: random.Random

    @property
    def path(self) -> str:
        if self.who == "desk":
            return (f"/cases/{self.case_id}/assignments/{self.subject.assignment_id}/"
                    f"{self.action.verb}")
        return f"/cases/{self.case_id}/{self.action.verb}"


K = TypeVar("K")
V = TypeVar("V")


class _Recent(OrderedDict[K, V]):
    """A mapping that forgets its oldest entries beyond ``REMEMBERED`` (a long run's memory)."""

    def remember(self, key: K, value: V) -> V:
        self[key] = value
        self.move_to_end(key)
        if len(self) > REMEMBERED:
            self.popitem(last=False)
        return value


class Actors:
    """Department desks (``desks``: department → key) and one command-center operator
    (``operator_key``; None: departments only) acting on the cases through ``transport``.

    ``region``: act only on cases within this jurisdiction code. ``grace_seconds``: after
    a desk acted on an assignment, its queue entry is left alone this long, while the
    projection catches up with the engine (the operator instead passes over a case whose
    ``updated_at`` is older than its own last step on it).
    """

    def __init__(self, transport: Transport, *, desks: Mapping[str, str],
                 operator_key: str | None, pace: Pace | None = None, seed: int = 0,
                 poll_seconds: float = 3.0, region: str | None = None, concurrency: int = 8,
                 grace_seconds: float = 20.0,
                 clock: Callable[[], datetime] = wall_clock) -> None:
        if not desks and operator_key is None:
            raise ActorsError("no department desks and no operator to act")
        self.transport, self.desks, self.operator_key = transport, dict(desks), operator_key
        self.pace, self.seed, self.region = pace or Pace(), seed, region
        self.poll_seconds, self.concurrency, self.grace_seconds = (
            poll_seconds, max(1, concurrency), grace_seconds)
        self.clock = clock
        self.tally = Tally()
        self._plans: dict[tuple[str, ...], _Plan] = {}
        self._agenda: list[tuple[datetime, int, tuple[str, ...]]] = []
        self._order = itertools.count()
        self._touched: dict[tuple[str, ...], float] = {}  # plan key → monotonic time of last act
        # case → when the operator last acted on it: an older state of it is stale
        self._acted: _Recent[str, datetime] = _Recent()
        self._rounds: _Recent[tuple[str, ...], int] = _Recent()  # plans made per key
        self._reworked: set[str] = set()

    # -- checks ------------------------------------------------------------------------

    def check(self, *, wait_seconds: float = 0.0) -> None:
        """Fail early and clearly: the API answers (within ``wait_seconds``, while it
        starts), and knows the desks' and operator's keys."""
        deadline = time.monotonic() + wait_seconds
        code, body = self.transport("GET", "/health", key="")
        while code == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
            code, body = self.transport("GET", "/health", key="")
        if code != 200:
            raise ActorsError(f"the API does not answer ({code or body})")
        users = [(f"/departments/{d}/queue", k) for d, k in list(self.desks.items())[:1]]
        if self.operator_key is not None:
            users.append(("/verification-queue", self.operator_key))
        for path, key in users:
            code, body = self.transport("GET", path, key=key, params={"limit": 1})
            if code in (401, 403):
                detail = body.get("detail") if isinstance(body, dict) else body
                raise ActorsError(f"the API refuses these keys ({code}: {detail}); was it "
                                  "started with the users file the keys belong to?")
            if code != 200:
                raise ActorsError(f"GET {path} answered {code or body}")

    # -- the loop ----------------------------------------------------------------------

    def run(self, stop: threading.Event, *, on_progress: Callable[[Tally], None] | None = None,
            progress_seconds: float = 5.0) -> Tally:
        """Poll, plan and act until ``stop`` is set; ``on_progress`` every few seconds."""
        in_flight: dict[Future[tuple[int, Any, datetime]], tuple[str, ...]] = {}
        next_poll = next_report = time.monotonic()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="actor") as pool:
            while not stop.is_set():
                if time.monotonic() >= next_poll:
                    self.poll()
                    next_poll = time.monotonic() + self.poll_seconds
                now = self.clock()
                while self._agenda and self._agenda[0][0] <= now and \
                        len(in_flight) < 2 * self.concurrency:
                    _, _, key = heapq.heappop(self._agenda)
                    in_flight[pool.submit(self._send, self._plans[key])] = key
                if on_progress is not None and time.monotonic() >= next_report:
                    on_progress(self.tally)
                    next_report = time.monotonic() + progress_seconds
                timeout = max(0.01, min(0.5, next_poll - time.monotonic(), self._until_due()))
                if in_flight:
                    done, _ = wait(in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
                    for future in done:
                        self._answered(in_flight.pop(future), *future.result())
                else:
                    stop.wait(timeout)
            for future in in_flight:
                future.cancel()
        return self.tally

    def _until_due(self) -> float:
        if not self._agenda:
            return 0.5
        return (self._agenda[0][0] - self.clock()).total_seconds()

    def _send(self, plan: _Plan) -> tuple[int, Any, datetime]:
        if plan.who == "extension" and not self._extension_pending(plan):
            return SKIPPED, None, self.clock()
        at = self.clock()
        code, body = self.transport("POST", plan.path, key=plan.key, json_body=plan.action.body)
        return code, body, at

    def _extension_pending(self, plan: _Plan) -> bool:
        """Whether the request still waits for a decision (the department may have handled
        its assignment meanwhile): the operator looks at the case first."""
        code, case = self.transport("GET", f"/cases/{plan.case_id}", key=plan.key)
        return code == 200 and any(a["assignment_id"] == plan.subject and a["extension_pending"]
                                   for a in case.get("assignments", ()))

    def _schedule(self, key: tuple[str, ...], plan: _Plan) -> None:
        self._plans[key] = plan
        heapq.heappush(self._agenda, (plan.action.at, next(self._order), key))

    def _rng(self, key: tuple[str, ...]) -> random.Random:
        rounds = self._rounds.remember(key, self._rounds.get(key, 0) + 1)
        return random.Random("|".join((str(self.seed), *key, str(rounds))))

    def _answered(self, key: tuple[str, ...], code: int, body: Any, at: datetime) -> None:
        plan = self._plans.pop(key)
        if code == SKIPPED:
            return
        if plan.who == "desk":
            self._touched[key] = time.monotonic()
        else:
            self._acted.remember(plan.case_id, at)
        if code == 409:
            self.tally.refused += 1
            detail = body.get("detail") if isinstance(body, dict) else body
            self.tally.reasons.append(f"{plan.action.verb} {plan.case_id}: {detail}")
            return
        if not 200 <= code < 300:
            self.tally.failed += 1
            detail = body.get("detail") if isinstance(body, dict) else body
            self.tally.reasons.append(f"{plan.action.verb} {plan.case_id}: {code or ''} {detail}")
            return
        self.tally.count(plan.action, at)
        now = self.clock()
        nxt: Action | None = None
        if plan.who == "desk":
            plan.subject = after_department_action(plan.subject, plan.action)
            nxt = next_department_action(plan.subject, plan.rng, now, self.pace)
            if plan.action.verb == "extension":
                self._decide_extension(plan.case_id, plan.subject.assignment_id)
        elif plan.who == "center":
            if plan.action.verb == "rework":
                self._reworked.add(plan.case_id)
            plan.subject = after_command_center_action(plan.subject, plan.action)
            nxt = next_command_center_action(plan.subject, plan.rng, now, self.pace)
        if nxt is not None:
            self._schedule(key, replace(plan, action=nxt))

    def _decide_extension(self, case_id: str, assignment_id: str) -> None:
        """The department asked; the dispatching level answers (the operator's to-do)."""
        if self.operator_key is None:
            return
        key = ("extension", case_id, assignment_id)
        rng = self._rng(key)
        self._schedule(key, _Plan("extension", self.operator_key, assignment_id, case_id,
                                  extension_decision(rng, self.clock(), self.pace, assignment_id),
                                  rng))

    # -- polling -----------------------------------------------------------------------

    def poll(self) -> None:
        """Look for work: every desk's queue, and the command center's."""
        cutoff = time.monotonic() - self.grace_seconds
        self._touched = {k: t for k, t in self._touched.items() if t >= cutoff}
        for department, key in self.desks.items():
            for item in self._pages(f"/departments/{department}/queue", key,
                                    {"status": list(WORKING)}):
                self._consider_assignment(department, key, item)
        if self.operator_key is not None:
            for case in self._pages("/verification-queue", self.operator_key, {}):
                self._consider_case(case)
            for case in self._pages("/cases", self.operator_key,
                                    {"status": list(COMMAND_CENTER)}):
                self._consider_case(case)

    def _pages(self, path: str, key: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        for page in range(MAX_PAGES):
            code, body = self.transport("GET", path, key=key,
                                        params={**params, "limit": PAGE, "offset": page * PAGE})
            if code != 200 or not isinstance(body, dict):
                self.tally.failed += 1
                self.tally.reasons.append(f"GET {path}: {code or ''} {body}")
                return
            yield from body["items"]
            if (page + 1) * PAGE >= body["total"]:
                return

    def _within(self, region_code: str) -> bool:
        return self.region is None or region_code.startswith(self.region)

    def _idle(self, key: tuple[str, ...]) -> bool:
        """No plan runs for ``key``, and (a desk's) it was not acted on within the grace."""
        return key not in self._plans and key not in self._touched

    def _consider_assignment(self, department: str, key: str, item: Mapping[str, Any]) -> None:
        plan_key = ("desk", item["case_id"], item["assignment_id"])
        if not self._within(item["region_code"]) or not self._idle(plan_key):
            return
        code, detail = self.transport("GET", f"/cases/{item['case_id']}", key=key)
        rng = self._rng(plan_key)
        work = plan_work(work_from(item, detail if code == 200 else None, department=department),
                         rng, self.pace, departments=sorted(self.desks))
        action = next_department_action(work, rng, self.clock(), self.pace)
        if action is not None:
            self._schedule(plan_key, _Plan("desk", key, work, work.case_id, action, rng))

    def _stale(self, case: Mapping[str, Any]) -> bool:
        """Whether ``case`` (as the store shows it) is older than the operator's last step on
        it — the store has not caught up, or the step was refused on this very state. A
        desk's queue entry has no such time: desks wait ``grace_seconds`` instead."""
        acted = self._acted.get(case["case_id"])
        if acted is None or not case.get("updated_at"):
            return False
        updated = datetime.fromisoformat(case["updated_at"])
        return (updated if updated.tzinfo else updated.replace(tzinfo=UTC)) < acted

    def _consider_case(self, case: Mapping[str, Any]) -> None:
        assert self.operator_key is not None
        case_id = case["case_id"]
        plan_key = ("center", case_id)
        if not self._within(case["region_code"]) or plan_key in self._plans or \
                self._stale(case):
            return
        if case["status"] == "returned":
            code, detail = self.transport("GET", f"/cases/{case_id}", key=self.operator_key)
            if code != 200 or self._stale(detail):
                return
            case = detail
        view: CaseView = case_view(case, reworked=case_id in self._reworked)
        rng = self._rng(plan_key)
        action = next_command_center_action(view, rng, self.clock(), self.pace)
        if action is not None:
            self._schedule(plan_key, _Plan("center", self.operator_key, view, case_id, action,
                                           rng))


__all__ = [
    "Actors",
    "ActorsError",
    "Tally",
    "Transport",
    "client_transport",
    "desks_of",
    "load_keys",
    "operator_of",
    "urllib_transport",
]
