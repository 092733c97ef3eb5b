"""The store's branch of the error tree (:mod:`streams.errors`)."""

from __future__ import annotations

from streams.errors import GridLinkError


class NotFound(GridLinkError):
    """The projection holds no such case or assignment (an unknown id, or one not read
    from the log yet); the API answers it with 404."""

    code = "not_found"


__all__ = ["NotFound"]
