"""The command gateway: HTTP actions become commands on ``cases.commands``.

The API never changes a case itself. :class:`CommandGateway` sends each command
through the Kafka channel of :mod:`topics.gateway`, which places it in the
partition of its case's writer and awaits the writer's reply on ``cases.replies``;
here the outcome becomes the API's answer: an accepted command's
:class:`CommandResult`, a refusal's :class:`TransitionRejected` (409), a broker
that cannot be reached :class:`EngineUnavailable` (503), a reply that does not
come in time :class:`EngineTimeout` (504).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, Field

from api.auth import User
from api.errors import EngineTimeout, EngineUnavailable
from clock import wall_clock
from observability import tracing
from settings import Settings
from streams.cases import Command, follow_up_id
from streams.cases.replies import CaseReply
from streams.errors import TransitionRejected
from topics.gateway import BrokerUnavailable, CommandChannel, NoReply

REPLY_TIMEOUT_SECONDS = 10.0

C = TypeVar("C", bound=Command)


class CommandResult(BaseModel):
    """An accepted command: the case's status afterwards and the events it caused."""

    case_id: str = Field(examples=["C-371502004-20261126-0001"])
    command_id: str = Field(examples=["6f1c2b0e9d8a4c51b3e2f0a1d4c5b6e7"])
    status: str | None = Field(examples=["accepted"], description="the case's status now")
    seqs: list[int] = Field(examples=[[4]], description="sequence numbers of the new events "
                            "in the case's timeline (none when nothing changed)")


@contextmanager
def _unavailable_as_problem() -> Iterator[None]:
    try:
        yield
    except BrokerUnavailable as error:
        raise EngineUnavailable(error.reason) from None


class CommandGateway:
    """The API's way to the case engine: each request's command, sent with the
    request's trace context, and the engine's answer as the API gives it."""

    def __init__(self, settings: Settings, *, timeout_seconds: float = REPLY_TIMEOUT_SECONDS,
                 clock: Callable[[], datetime] = wall_clock) -> None:
        self.settings = settings
        self.timeout_seconds = timeout_seconds
        self.clock = clock
        self.channel = CommandChannel(settings, timeout_seconds=timeout_seconds,
                                      headers=tracing.outgoing_headers)

    async def start(self) -> None:
        with _unavailable_as_problem():
            await self.channel.start()

    async def stop(self) -> None:
        await self.channel.stop()

    async def broker_answers(self) -> None:
        """Ask the broker for the cluster's metadata; raises :class:`EngineUnavailable`
        when it does not answer or the gateway is not started. Bound it with a timeout:
        a broker that is down is retried."""
        with _unavailable_as_problem():
            await self.channel.broker_answers()

    def replies_flowing(self) -> str | None:
        """Why the engine's replies cannot reach this process (None: they can)."""
        return self.channel.replies_flowing()

    async def publish(self, topic: str, *, key: bytes, value: bytes) -> None:
        """Produce ``value`` as it is to contract topic ``topic`` (intake over HTTP)."""
        with _unavailable_as_problem():
            await self.channel.publish(topic, key=key, value=value)

    def _unanswered(self, command: Command) -> EngineTimeout:
        return EngineTimeout(f"no answer to command {command.command_id} on case "
                             f"{command.case_id} within {self.timeout_seconds:.0f} s; it "
                             "may still be applied — read the case to see")

    async def send(self, command: Command) -> CaseReply:
        """Produce ``command`` and return the engine's reply to it."""
        try:
            with _unavailable_as_problem():
                return await self.channel.send(command)
        except NoReply:
            raise self._unanswered(command) from None

    async def send_chain(self, command: Command,
                         follow_up: str) -> tuple[CaseReply, CaseReply | None]:
        """Produce ``command``, whose application makes the engine send a follow-up
        command to another case (merge, split: :mod:`streams.cases.follow_ups`), and
        return the engine's reply to it and the other case's reply to the follow-up
        — None when the command caused no events, so no follow-up was sent."""
        try:
            with _unavailable_as_problem():
                return await self.channel.send_chain(command, follow_up)
        except NoReply as error:
            if error.command_id == command.command_id:
                raise self._unanswered(command) from None
            then_id = follow_up_id(command.command_id, follow_up)
            raise EngineTimeout(f"case {command.case_id} applied command "
                                f"{command.command_id}, but its follow-up {then_id} got no "
                                f"answer within {self.timeout_seconds:.0f} s; it may still "
                                "be applied — read the cases to see") from None

    async def run_chain(self, kind: type[C], case_id: str, user: User, *, follow_up: str,
                        **fields: Any) -> tuple[CommandResult, CaseReply | None]:
        """:meth:`run` for a command with a follow-up (:meth:`send_chain`): the result of
        the command, then the other case's reply to the follow-up, accepted or not."""
        command = kind(case_id=case_id, command_id=uuid.uuid4().hex, actor=user.actor,
                       at=self.clock(), **fields)
        reply, then = await self.send_chain(command, follow_up)
        if not reply.accepted:
            raise TransitionRejected(reply.reason or "rejected by the case engine")
        return result_of(reply), then

    async def run(self, kind: type[C], case_id: str, user: User, **fields: Any) -> CommandResult:
        """Issue a ``kind`` command on ``case_id`` as ``user``; an accepted one's result,
        or :class:`TransitionRejected` with the engine's reason."""
        command = kind(case_id=case_id, command_id=uuid.uuid4().hex, actor=user.actor,
                       at=self.clock(), **fields)
        reply = await self.send(command)
        if not reply.accepted:
            raise TransitionRejected(reply.reason or "rejected by the case engine")
        return result_of(reply)


def result_of(reply: CaseReply) -> CommandResult:
    """An accepted reply as the API answers it."""
    return CommandResult(case_id=reply.case_id, command_id=reply.command_id,
                         status=reply.status, seqs=list(reply.seqs))


def _gateway(request: Request) -> CommandGateway:
    gateway: CommandGateway = request.app.state.gateway
    return gateway


Gateway = Annotated[CommandGateway, Depends(_gateway)]

__all__ = ["CaseReply", "CommandGateway", "CommandResult", "Gateway", "result_of"]
