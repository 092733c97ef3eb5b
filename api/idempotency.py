"""Idempotency keys (幂等键): an action repeated with the same key applies once, and
every repeat gets the first answer — for the REST API (the ``Idempotency-Key``
header) and the console (each form's hidden ``idempotency_key``) alike.

The key becomes the command's id: ``command_id_for(actor, action, key)`` hashes the
user, the action's REST path (``/cases/<id>/assignments/A1/claim``) and the key, so
two users' keys never collide and one key names one action on one case. The case
engine already ignores a command id a case has seen recently
(:func:`streams.cases.decide`); what is added here is the answer:

1. a repeat that arrives while the first is in flight (a double click) waits for
   the first and gets its answer; one that arrives later gets the answer this
   process kept (:data:`ANSWERS_KEPT` of them, for :data:`ANSWER_TTL_SECONDS`);
2. otherwise (another API process, a restart) the case's log answers: the events
   the command caused and the case's status right after them, as the projection
   holds them — then nothing is sent at all;
3. a command the engine took as a repeat (accepted, no new events) is answered the
   same way, once the projection has read the first one's events.

A refused command (409) or one the engine did not answer (504) is not kept: a
retry asks the engine again, which decides afresh (a refusal changed nothing).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request

from api.auth import User
from api.commands import CaseReply, CommandGateway, CommandResult, result_of
from api.errors import InvalidRequest
from store import reads
from store.service import Store
from streams.cases import Command, follow_up_id, follow_ups
from streams.errors import TransitionRejected

HEADER = "Idempotency-Key"
FORM_FIELD = "idempotency_key"
MAX_KEY_CHARS = 128
ANSWERS_KEPT = 10_000
ANSWER_TTL_SECONDS = 24 * 3600.0
PROJECTION_WAIT_SECONDS = 3.0  # a repeat's first events, not read by the projection yet
POLL_SECONDS = 0.1

C = TypeVar("C", bound=Command)
T = TypeVar("T")


def command_id_for(actor: str, action: str, key: str) -> str:
    """The command id of ``action`` (its REST path) by ``actor`` under ``key``."""
    digest = hashlib.blake2b(f"{actor}\n{action}\n{key}".encode(), digest_size=16).hexdigest()
    return f"idem-{digest}"


def checked_key(key: str | None, *, field_name: str = HEADER) -> str | None:
    """The key as given, or None; 422 if it is not 1–128 printable ASCII characters."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_CHARS or not all(" " <= c <= "~" for c in key):
        raise InvalidRequest(f"{field_name} must be 1 to {MAX_KEY_CHARS} printable ASCII "
                             "characters (a UUID will do)", field=field_name)
    return key


@dataclass
class Answers:
    """This process's answers by command id: in flight, or given (for a while)."""

    kept: int = ANSWERS_KEPT
    ttl_seconds: float = ANSWER_TTL_SECONDS
    _entries: OrderedDict[str, tuple[float, asyncio.Future[Any]]] = field(
        default_factory=OrderedDict)

    async def once(self, command_id: str, work: Callable[[], Awaitable[T]]) -> T:
        """``work()``'s answer, computed once per command id while it is kept."""
        now = time.monotonic()
        entry = self._entries.get(command_id)
        if entry is not None and now - entry[0] < self.ttl_seconds:
            return await asyncio.shield(entry[1])
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._entries[command_id] = (now, future)
        while len(self._entries) > self.kept:
            self._entries.popitem(last=False)
        try:
            answer = await work()
        except BaseException as error:
            self._entries.pop(command_id, None)  # refused or unanswered: a retry asks again
            if isinstance(error, Exception):
                future.set_exception(error)
                future.exception()  # retrieved: no "never retrieved" warning without waiters
            else:
                future.cancel()
            raise
        future.set_result(answer)
        return answer


@dataclass
class Commands:
    """The command gateway as one request uses it: with an idempotency key, each
    command is sent at most once and its repeats answered as the first (module doc).
    ``run`` and ``run_chain`` take what :class:`api.commands.CommandGateway`'s do."""

    gateway: CommandGateway
    store: Store
    answers: Answers
    action: str  # the REST path of the action: what the key is scoped to
    key: str | None = None

    def _command_id(self, user: User) -> str | None:
        return None if self.key is None else command_id_for(user.actor, self.action, self.key)

    def _build(self, kind: type[C], case_id: str, user: User, command_id: str,
               fields: dict[str, Any]) -> C:
        return kind(case_id=case_id, command_id=command_id, actor=user.actor,
                    at=self.gateway.clock(), **fields)

    async def run(self, kind: type[C], case_id: str, user: User, **fields: Any) -> CommandResult:
        command_id = self._command_id(user)
        if command_id is None:
            return await self.gateway.run(kind, case_id, user, **fields)

        async def first() -> CommandResult:
            recorded = await self._recorded(case_id, command_id)
            if recorded is not None:
                return recorded
            reply = await self.gateway.send(self._build(kind, case_id, user, command_id, fields))
            if not reply.accepted:
                raise TransitionRejected(reply.reason or "rejected by the case engine")
            if not reply.seqs:  # a repeat the engine recognised, or nothing to change
                recorded = await self._recorded(case_id, command_id, wait=True)
            return recorded or result_of(reply)

        return await self.answers.once(command_id, first)

    async def run_chain(self, kind: type[C], case_id: str, user: User, *, follow_up: str,
                        **fields: Any) -> tuple[CommandResult, CaseReply | None]:
        command_id = self._command_id(user)
        if command_id is None:
            return await self.gateway.run_chain(kind, case_id, user, follow_up=follow_up,
                                                **fields)

        async def first() -> tuple[CommandResult, CaseReply | None]:
            command = self._build(kind, case_id, user, command_id, fields)
            recorded = await self._recorded_chain(command, follow_up)
            if recorded is not None:
                return recorded
            reply, then = await self.gateway.send_chain(command, follow_up)
            if not reply.accepted:
                raise TransitionRejected(reply.reason or "rejected by the case engine")
            if not reply.seqs:
                recorded = await self._recorded_chain(command, follow_up, wait=True)
                if recorded is not None:
                    return recorded
            return result_of(reply), then

        return await self.answers.once(command_id, first)

    # -- answers read back from the case log ----------------------------------------------

    async def _outcome(self, case_id: str, command_id: str, *,
                       wait: bool) -> reads.CommandOutcome | None:
        deadline = time.monotonic() + (PROJECTION_WAIT_SECONDS if wait else 0.0)
        while True:
            outcome = await asyncio.to_thread(self._read_outcome, case_id, command_id)
            if outcome is not None or time.monotonic() >= deadline:
                return outcome
            await asyncio.sleep(POLL_SECONDS)

    def _read_outcome(self, case_id: str, command_id: str) -> reads.CommandOutcome | None:
        with self.store.sessions() as session:
            return reads.command_outcome(session, case_id, command_id)

    async def _recorded(self, case_id: str, command_id: str, *,
                        wait: bool = False) -> CommandResult | None:
        outcome = await self._outcome(case_id, command_id, wait=wait)
        if outcome is None:
            return None
        return CommandResult(case_id=case_id, command_id=command_id, status=outcome.status,
                             seqs=list(outcome.seqs))

    async def _recorded_chain(self, command: Command, follow_up: str, *, wait: bool = False
                              ) -> tuple[CommandResult, CaseReply | None] | None:
        outcome = await self._outcome(command.case_id, command.command_id, wait=wait)
        if outcome is None:
            return None
        first = CommandResult(case_id=command.case_id, command_id=command.command_id,
                              status=outcome.status, seqs=list(outcome.seqs))
        then_id = follow_up_id(command.command_id, follow_up)
        other = next((c.case_id for c in follow_ups(outcome.state, command, outcome.events)
                      if c.command_id == then_id), None)
        if other is None:
            return first, None
        then = await self._outcome(other, then_id, wait=True)
        if then is None:
            return first, CaseReply(
                case_id=other, command_id=then_id, accepted=False,
                reason=f"this request was made before and case {other} did not take its part; "
                "read both cases' timelines")
        return first, CaseReply(case_id=other, command_id=then_id, accepted=True,
                                seqs=then.seqs, status=then.status)


def commands(request: Request, idempotency_key: Annotated[
        str | None, Header(alias=HEADER, max_length=MAX_KEY_CHARS,
                           description="any unique string (a UUID): the action applies once "
                           "however often it is sent with this key, and every repeat gets "
                           "the first answer")] = None) -> Commands:
    state = request.app.state
    return Commands(gateway=state.gateway, store=state.store, answers=state.answers,
                    action=request.url.path, key=checked_key(idempotency_key))


IdempotentGateway = Annotated[Commands, Depends(commands)]

__all__ = ["FORM_FIELD", "HEADER", "Answers", "Commands", "IdempotentGateway", "checked_key",
           "command_id_for", "commands"]
