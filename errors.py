"""The one error type a user can act on.

Every package raises a subclass of :class:`SoundalikeError` for a request it cannot answer as asked (a file that
is not audio, a store that is damaged or locked, an unknown id, a bad option). Its message is one line naming
the file or value and the reason. The command line prints that line and exits with ``exit_code``; the HTTP
service answers ``http_status`` with it. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SoundalikeError(Exception):
    """A request soundalike cannot answer as asked; ``str(err)`` is one line naming what and why."""

    #: the command line's exit status (2: click's convention for a bad request)
    exit_code = 2
    #: the HTTP service's status
    http_status = 400


class NotFound(SoundalikeError):
    """What was asked for does not exist: a track id, a file of the store."""

    http_status = 404


class Unavailable(SoundalikeError):
    """The store cannot answer now or at all (damaged, locked, being written): the service says 503."""

    http_status = 503
