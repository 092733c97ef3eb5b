"""The command gateway's Kafka side: commands onto ``cases.commands``, and the case
writers' replies read back from ``cases.replies``.

:class:`CommandChannel` produces a command keyed by its case id, in the partition
of its township's writer (:mod:`topics.placement`), signed when commands are
(:mod:`topics.signing`), so the one writer owning that case applies it; then it
awaits the writer's reply. One background consumer per process reads
``cases.replies`` from its end (no consumer group, every partition) and resolves
the waiting caller by ``command_id``; replies to other processes' commands are
skipped.

The channel speaks the project's error tree, never the client library's: a broker
that cannot be reached is :class:`BrokerUnavailable`, a reply that does not come in
time :class:`NoReply`. The API turns them into problems (:mod:`api.commands`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from settings import Settings
from streams.cases import Command, follow_up_id
from streams.cases.replies import CaseReply
from streams.errors import GridLinkError
from topics import clients, codecs, registry, signing
from topics.placement import Placement

log = logging.getLogger(__name__)

TOPIC_WAIT_SECONDS = 30.0  # how long start() waits for cases.commands and cases.replies

#: Kafka headers: (name, value) pairs
Headers = list[tuple[str, bytes]]


class BrokerUnavailable(GridLinkError):
    """The broker cannot be reached, a topic is missing, or the channel is not started."""

    code = "broker_unavailable"


class NoReply(GridLinkError):
    """No reply to ``command_id`` within the channel's timeout; the command may still
    be applied."""

    code = "no_reply"

    def __init__(self, reason: str, *, command_id: str) -> None:
        super().__init__(reason)
        self.command_id = command_id


def _no_headers() -> Headers | None:
    return None


class CommandChannel:
    """A producer onto ``cases.commands`` (and the ingest topics, for intake over HTTP)
    and the reader of ``cases.replies`` that hands each reply to the caller awaiting it.

    ``headers`` gives the headers each record carries besides its signature (the
    trace context of the request sending it)."""

    def __init__(self, settings: Settings, *, timeout_seconds: float,
                 headers: Callable[[], Headers | None] = _no_headers) -> None:
        self.settings = settings
        self.timeout_seconds = timeout_seconds
        self.headers = headers
        self.placement = Placement()
        self._signing_key = signing.key_for(settings)
        self._waiting: dict[str, asyncio.Future[CaseReply]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect, learn the partitions of ``cases.commands`` and start reading
        ``cases.replies`` at its end; :class:`BrokerUnavailable` if a topic is missing."""
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
        producer = self._started()
        deadline = time.monotonic() + TOPIC_WAIT_SECONDS
        while True:
            try:
                partitions = await producer.partitions_for(topic)
            except KafkaError:
                partitions = set()
            if partitions:
                return set(partitions)
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"topic {topic} does not exist: run "
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

    def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise BrokerUnavailable("the command gateway is not started")
        return self._producer

    async def broker_answers(self) -> None:
        """Ask the broker for the cluster's metadata, through the producer; raises
        :class:`BrokerUnavailable` when it does not answer or the channel is not
        started. Bound it with a timeout: a broker that is down is retried."""
        producer = self._started()
        try:
            await producer.client.fetch_all_metadata()
        except KafkaError as error:
            raise BrokerUnavailable(f"the broker does not answer: {error}") from None

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
        producer = self._started()
        try:
            await producer.send_and_wait(self.settings.topic(topic), key=key, value=value,
                                         headers=self.headers())
        except KafkaError as error:
            raise BrokerUnavailable(f"cannot produce to {topic}: {error}") from None

    async def send(self, command: Command) -> CaseReply:
        """Produce ``command`` and return the engine's reply to it; :class:`NoReply`
        when none comes within the timeout."""
        self._started()
        future: asyncio.Future[CaseReply] = asyncio.get_running_loop().create_future()
        self._waiting[command.command_id] = future
        try:
            await self._send_command(command)
            return await self._reply(future, command.command_id)
        finally:
            self._waiting.pop(command.command_id, None)

    async def send_chain(self, command: Command,
                         follow_up: str) -> tuple[CaseReply, CaseReply | None]:
        """Produce ``command``, whose application makes the engine send a follow-up
        command to another case (merge, split: :mod:`streams.cases.follow_ups`), and
        return the engine's reply to it and the other case's reply to the follow-up
        — None when the command caused no events, so no follow-up was sent.
        :class:`NoReply` names the command that got no reply."""
        self._started()
        loop = asyncio.get_running_loop()
        then_id = follow_up_id(command.command_id, follow_up)
        first: asyncio.Future[CaseReply] = loop.create_future()
        second: asyncio.Future[CaseReply] = loop.create_future()
        self._waiting[command.command_id] = first  # both before sending: no reply is missed
        self._waiting[then_id] = second
        try:
            await self._send_command(command)
            reply = await self._reply(first, command.command_id)
            if not reply.accepted or not reply.seqs:
                return reply, None
            return reply, await self._reply(second, then_id)
        finally:
            self._waiting.pop(command.command_id, None)
            self._waiting.pop(then_id, None)

    async def _reply(self, future: asyncio.Future[CaseReply], command_id: str) -> CaseReply:
        try:
            return await asyncio.wait_for(future, self.timeout_seconds)
        except TimeoutError:
            raise NoReply(f"no reply to command {command_id} within "
                          f"{self.timeout_seconds:.0f} s", command_id=command_id) from None

    async def _send_command(self, command: Command) -> None:
        producer = self._started()
        key, value = command.case_id.encode(), codecs.encode(command)
        try:
            await producer.send_and_wait(
                self.settings.topic(registry.CASE_COMMANDS), key=key, value=value,
                partition=self.placement.of_case(command.case_id),
                headers=signing.signed(self._signing_key, key, value, self.headers() or []))
        except KafkaError as error:
            raise BrokerUnavailable(f"cannot send the command: {error}") from None


__all__ = ["BrokerUnavailable", "CommandChannel", "Headers", "NoReply", "TOPIC_WAIT_SECONDS"]
