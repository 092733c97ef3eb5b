"""The command gateway: HTTP actions become commands on ``cases.commands``.

The API never changes a case itself. :class:`CommandGateway` produces the
command keyed by its case id, in the partition of its township's writer
(:mod:`topics.placement`), so the one writer owning that case applies it, and
awaits the writer's answer on ``cases.replies``. One background consumer per
API process reads ``cases.replies`` from its end (no consumer group, every
partition) and resolves the waiting request by ``command_id``; answers to other
processes' commands are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
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
from topics import clients, codecs, registry, signing
from topics.placement import Placement

log = logging.getLogger(__name__)

REPLY_TIMEOUT_SECONDS = 10.0
TOPIC_WAIT_SECONDS = 30.0

C = TypeVar("C", bound=Command)


class CommandResult(BaseModel):
    """An accepted command: the case's status afterwards and the events it caused."""

    case_id: str = Field(examples=["C-371502004-20261126-0001"])
    command_id: str = Field(examples=["6f1c2b0e9d8a4c51b3e2f0a1d4c5b6e7"])
    status: str | None = Field(examples=["accepted"], description="the case's status now")
    seqs: list[int] = Field(examples=[[4]], description="sequence numbers of the new events "
                            "in the case's timeline (none when nothing changed)")


class CommandGateway:
    def __init__(self, settings: Settings, *, timeout_seconds: float = REPLY_TIMEOUT_SECONDS,
                 clock: Callable[[], datetime] = wall_clock) -> None:
        self.settings = settings
        self.timeout_seconds = timeout_seconds
        self.clock = clock
        self._waiting: dict[str, asyncio.Future[CaseReply]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self.placement = Placement()
        self._signing_key = signing.key_for(settings)

    async def start(self) -> None:
        self._producer = clients.aio_producer(self.settings, client_id="gridlink-api",
                                              acks="all", linger_ms=0,
                                              enable_idempotence=True)
        self._consumer = clients.aio_consumer(self.settings, client_id="gridlink-api-replies",
                                              group_id=None, enable_auto_commit=False)
        await self._producer.start()
        await self._consumer.start()
        self.placement.partitions = len(
            await self._partitions(self.settings.topic(registry.CASE_COMMANDS)))
        replies = self.settings.topic(registry.CASE_REPLIES)
        partitions = await self._partitions(replies)
        tps = [TopicPartition(replies, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end now: a reply can never land before the read position
            await self._consumer.position(tp)
        self._reader = asyncio.create_task(self._read_replies(), name="cases.replies reader")

    async def _partitions(self, topic: str) -> set[int]:
        assert self._producer is not None
        deadline = time.monotonic() + TOPIC_WAIT_SECONDS
        while True:
            try:
                partitions = await self._producer.partitions_for(topic)
            except KafkaError:
                partitions = set()
            if partitions:
                return set(partitions)
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"topic {topic} does not exist: run "
                                        "`gridlink topics create` first")
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for client in (self._consumer, self._producer):
            if client is not None:
                await client.stop()
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()

    async def broker_answers(self) -> None:
        """Ask the broker for the cluster's metadata, through the gateway's producer;
        raises :class:`EngineUnavailable` when it does not answer or the gateway is not
        started. Bound it with a timeout: a broker that is down is retried."""
        if self._producer is None:
            raise EngineUnavailable("the command gateway is not started")
        try:
            await self._producer.client.fetch_all_metadata()
        except KafkaError as error:
            raise EngineUnavailable(f"the broker does not answer: {error}") from None

    def replies_flowing(self) -> str | None:
        """Why the engine's replies cannot reach this process (None: they can) — the
        reply consumer is not assigned ``cases.replies`` or its reader has stopped."""
        if self._consumer is None or self._reader is None:
            return "the reply consumer is not started"
        if self._reader.done():
            error = None if self._reader.cancelled() else self._reader.exception()
            return "the reply reader has stopped" + (f": {error!r}" if error else "")
        if not self._consumer.assignment():
            return "the reply consumer has no partition of cases.replies"
        return None

    async def _read_replies(self) -> None:
        assert self._consumer is not None
        async for record in self._consumer:
            try:
                reply = codecs.decode(record.value or b"", CaseReply)
            except msgspec.DecodeError:
                log.warning("undecodable reply at %s[%d]@%d", record.topic, record.partition,
                            record.offset)
                continue
            future = self._waiting.pop(reply.command_id, None)
            if future is not None and not future.done():
                future.set_result(reply)

    async def publish(self, topic: str, *, key: bytes, value: bytes) -> None:
        """Produce ``value`` as it is to contract topic ``topic`` (intake over HTTP)."""
        if self._producer is None:
            raise EngineUnavailable("the command gateway is not started")
        try:
            await self._producer.send_and_wait(self.settings.topic(topic), key=key, value=value,
                                               headers=tracing.outgoing_headers())
        except KafkaError as error:
            raise EngineUnavailable(f"cannot produce to {topic}: {error}") from None

    async def send(self, command: Command) -> CaseReply:
        """Produce ``command`` and return the engine's reply to it."""
        if self._producer is None:
            raise EngineUnavailable("the command gateway is not started")
        future: asyncio.Future[CaseReply] = asyncio.get_running_loop().create_future()
        self._waiting[command.command_id] = future
        try:
            await self._send_command(command)
            return await asyncio.wait_for(future, self.timeout_seconds)
        except TimeoutError:
            raise EngineTimeout(f"no answer to command {command.command_id} on case "
                                f"{command.case_id} within {self.timeout_seconds:.0f} s; it "
                                "may still be applied — read the case to see") from None
        except KafkaError as error:
            raise EngineUnavailable(f"cannot send the command: {error}") from None
        finally:
            self._waiting.pop(command.command_id, None)

    async def _send_command(self, command: Command) -> None:
        assert self._producer is not None
        key, value = command.case_id.encode(), codecs.encode(command)
        await self._producer.send_and_wait(
            self.settings.topic(registry.CASE_COMMANDS), key=key, value=value,
            partition=self.placement.of_case(command.case_id),
            headers=signing.signed(self._signing_key, key, value,
                                   tracing.outgoing_headers() or []))

    async def send_chain(self, command: Command,
                         follow_up: str) -> tuple[CaseReply, CaseReply | None]:
        """Produce ``command``, whose application makes the engine send a follow-up
        command to another case (merge, split: :mod:`streams.cases.follow_ups`), and
        return the engine's reply to it and the other case's reply to the follow-up
        — None when the command caused no events, so no follow-up was sent."""
        if self._producer is None:
            raise EngineUnavailable("the command gateway is not started")
        loop = asyncio.get_running_loop()
        then_id = follow_up_id(command.command_id, follow_up)
        first: asyncio.Future[CaseReply] = loop.create_future()
        second: asyncio.Future[CaseReply] = loop.create_future()
        self._waiting[command.command_id] = first  # both before sending: no reply is missed
        self._waiting[then_id] = second
        try:
            await self._send_command(command)
            try:
                reply = await asyncio.wait_for(first, self.timeout_seconds)
            except TimeoutError:
                raise EngineTimeout(f"no answer to command {command.command_id} on case "
                                    f"{command.case_id} within {self.timeout_seconds:.0f} s; it "
                                    "may still be applied — read the case to see") from None
            if not reply.accepted or not reply.seqs:
                return reply, None
            try:
                return reply, await asyncio.wait_for(second, self.timeout_seconds)
            except TimeoutError:
                raise EngineTimeout(f"case {command.case_id} applied command "
                                    f"{command.command_id}, but its follow-up {then_id} got no "
                                    f"answer within {self.timeout_seconds:.0f} s; it may still "
                                    "be applied — read the cases to see") from None
        except KafkaError as error:
            raise EngineUnavailable(f"cannot send the command: {error}") from None
        finally:
            self._waiting.pop(command.command_id, None)
            self._waiting.pop(then_id, None)

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
    return request.app.state.gateway  # type: ignore[no-any-return]


Gateway = Annotated[CommandGateway, Depends(_gateway)]

__all__ = ["CaseReply", "CommandGateway", "CommandResult", "Gateway", "result_of"]
