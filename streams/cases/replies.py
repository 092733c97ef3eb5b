"""The answer to a case command (on ``cases.replies``, keyed by case id): accepted
with the events it caused, or rejected with the engine's reason."""

from __future__ import annotations

import msgspec


class CaseReply(msgspec.Struct, frozen=True, kw_only=True):
    """Accepted (with the events it caused) or rejected (with the engine's reason)."""

    case_id: str
    command_id: str
    accepted: bool
    reason: str = ""
    seqs: tuple[int, ...] = ()  # sequence numbers of the events it caused
    status: str | None = None  # the case's status afterwards
