"""One error tree for the whole core.

Agents map these to the dead-letter topic (with ``code`` and ``reason``) and a
metric; the API maps them to RFC 9457 problem details.
"""

from __future__ import annotations


class GridLinkError(Exception):
    """Base of every error GridLink raises on purpose."""

    code: str = "error"

    def __init__(self, reason: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code
        self.field = field


class InvalidEvent(GridLinkError):
    """An inbound message that cannot be accepted (bad bytes, shape or values)."""

    code = "invalid"


class UnroutableEvent(GridLinkError):
    """A valid message that cannot be placed or routed (e.g. unknown camera, no location)."""

    code = "unroutable"


class TransitionRejected(GridLinkError):
    """A case command that the case's current state does not allow."""

    code = "transition_rejected"


class RulesError(GridLinkError):
    """A rule or reference data file that is missing or inconsistent (raised at start-up)."""

    code = "rules_invalid"
