"""Idempotency keys without a broker: a fake gateway counts what is sent, an empty store
stands for a case log that has not seen the command."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from api.auth import Role, User
from api.errors import InvalidRequest
from api.idempotency import Answers, Commands, checked_key, command_id_for
from store.service import Store
from streams.cases import Claim
from streams.cases.replies import CaseReply
from streams.errors import TransitionRejected
from streams.zone import TZ

AT = datetime(2026, 11, 26, 10, 0, tzinfo=TZ)
DESK = User(name="cg", role=Role.DEPARTMENT, department="chengguan")
PATH = "/cases/C1/assignments/A1/claim"


class FakeGateway:
    """Answers each command after a short while: accepted with new events the first
    time an id is seen, as a repeat (no events) after; or refuses every command."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.sent: list[str] = []
        self.refuse = refuse

    def clock(self) -> datetime:
        return AT

    async def send(self, command) -> CaseReply:  # type: ignore[no-untyped-def]
        first = command.command_id not in self.sent
        self.sent.append(command.command_id)
        await asyncio.sleep(0.05)
        if self.refuse:
            return CaseReply(case_id=command.case_id, command_id=command.command_id,
                             accepted=False, reason="assignment A1 is already claimed")
        return CaseReply(case_id=command.case_id, command_id=command.command_id, accepted=True,
                         seqs=(4,) if first else (), status="accepted")


@pytest.fixture
def store(tmp_path):
    opened = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield opened
    opened.close()


def _commands(gateway: FakeGateway, store: Store, answers: Answers, key: str | None) -> Commands:
    return Commands(gateway=gateway, store=store, answers=answers,  # type: ignore[arg-type]
                    action=PATH, key=key)


def test_a_double_click_sends_once_and_both_get_the_first_answer(store):
    gateway, answers = FakeGateway(), Answers()

    async def twice():
        one = _commands(gateway, store, answers, "k").run(Claim, "C1", DESK, assignment_id="A1",
                                                          department="chengguan")
        two = _commands(gateway, store, answers, "k").run(Claim, "C1", DESK, assignment_id="A1",
                                                          department="chengguan")
        return await asyncio.gather(one, two)

    first, second = asyncio.run(twice())
    assert first == second and first.seqs == [4] and first.status == "accepted"
    assert gateway.sent == [command_id_for(DESK.actor, PATH, "k")]


def test_without_a_key_every_request_is_a_new_command(store):
    gateway = FakeGateway()

    async def run(commands: Commands):
        return await commands.run(Claim, "C1", DESK, assignment_id="A1", department="chengguan")

    class Direct:  # the plain gateway's run, as api.commands has it
        async def run(self, kind, case_id, user, **fields):  # type: ignore[no-untyped-def]
            command = kind(case_id=case_id, command_id=f"u{len(gateway.sent)}",
                           actor=user.actor, at=AT, **fields)
            reply = await gateway.send(command)
            return reply

    commands = _commands(gateway, store, Answers(), None)
    commands.gateway = Direct()  # type: ignore[assignment]
    asyncio.run(run(commands))
    asyncio.run(run(commands))
    assert gateway.sent == ["u0", "u1"]


def test_a_refusal_is_not_kept_a_retry_asks_again(store):
    gateway, answers = FakeGateway(refuse=True), Answers()
    for _ in range(2):
        with pytest.raises(TransitionRejected, match="already claimed"):
            asyncio.run(_commands(gateway, store, answers, "k").run(
                Claim, "C1", DESK, assignment_id="A1", department="chengguan"))
    assert len(gateway.sent) == 2


def test_a_key_names_one_action_of_one_user():
    one = command_id_for("department:cg", PATH, "k")
    assert one == command_id_for("department:cg", PATH, "k")
    assert one != command_id_for("department:sifa", PATH, "k")
    assert one != command_id_for("department:cg", PATH.replace("claim", "return"), "k")
    assert one != command_id_for("department:cg", PATH, "k2")


@pytest.mark.parametrize("key", ["", "x" * 129, "换行", "a\nb"])
def test_a_malformed_key_is_refused(key: str):
    with pytest.raises(InvalidRequest, match="printable ASCII"):
        checked_key(key)
    assert checked_key("6f1c2b0e-9d8a-4c51-b3e2-f0a1d4c5b6e7") is not None
