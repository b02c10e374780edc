"""The search layer's errors (``soundalike.errors`` has the one base type)."""

from __future__ import annotations

from ..errors import NotFound, SoundalikeError


class QueryError(SoundalikeError):
    """A query that cannot be answered (unknown id, not audio, unknown genre); the message says why."""


class UnknownTrack(QueryError, NotFound):
    """No track of the store has the id asked for."""
