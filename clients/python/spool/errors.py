"""Exceptions: every error reply of spoold becomes a typed SpoolError.

spoold's errors start with a prefix a program can match (`STALE`, `FULL`,
`NOJOB`, ...); `error_from_reply` turns the text into the matching class
and keeps the server's own words as the message.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Type

__all__ = [
    "SpoolError",
    "ServerError",
    "StaleReceiptError",
    "NoJobError",
    "QueueFullError",
    "BadJsonError",
    "TooBigError",
    "AuthError",
    "WrongTypeError",
    "CrossSlotError",
    "NotSupportedError",
    "SpoolConnectionError",
    "BulkAddError",
    "UnrecoverableError",
    "error_from_reply",
]


class SpoolError(Exception):
    """Base of every error this package raises about the broker.

    `code` is the server's prefix (`STALE`, `FULL`, `ERR`, ...) or None for
    errors that did not come from the server."""

    code: Optional[str] = None

    def __init__(self, message: str, code: Optional[str] = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ServerError(SpoolError):
    """An error reply without a more specific class (`ERR ...`)."""

    code = "ERR"


class StaleReceiptError(SpoolError):
    """`-STALE`: the receipt is of an earlier delivery (the lease expired and
    the job went to another worker, or it was acked already). Do not act on
    the job."""

    code = "STALE"


class NoJobError(SpoolError):
    """`-NOJOB`: no such job (it never existed, or finished and was removed)."""

    code = "NOJOB"


class QueueFullError(SpoolError):
    """`-FULL`: the queue has `maxlen` unfinished jobs; nothing was pushed."""

    code = "FULL"


class BadJsonError(SpoolError):
    """`-BADJSON`: the payload is not valid JSON; nothing was pushed."""

    code = "BADJSON"


class TooBigError(SpoolError):
    """`-TOOBIG`: the payload is over the queue's `max-payload`."""

    code = "TOOBIG"


class AuthError(SpoolError):
    """`-NOAUTH`, `-WRONGPASS`, `-NOPERM`: log in, or use a user allowed to."""

    code = "NOAUTH"


class WrongTypeError(SpoolError):
    """`-WRONGTYPE`: the key holds another kind of value."""

    code = "WRONGTYPE"


class CrossSlotError(SpoolError):
    """`-CROSSSLOT`: keys of one command live on different shards."""

    code = "CROSSSLOT"


class NotSupportedError(SpoolError):
    """The broker does not know this command or option yet (an older spoold).

    `feature` names what was asked for (`JOB.WAIT`, `JOB.PUSH GROUP`, ...)."""

    code = "ERR"

    def __init__(self, message: str, feature: str = "") -> None:
        super().__init__(message)
        self.feature = feature


class SpoolConnectionError(SpoolError, ConnectionError):
    """The broker could not be reached, or the connection broke mid-request.

    A push whose reply was lost may or may not be stored: Queue.add sends it
    again with its idempotency key for `push_retry` seconds before it raises
    this."""

    code = None


class BulkAddError(SpoolError):
    """Some jobs of `Queue.add_bulk` were refused. `results` has, per item,
    the Job pushed or the SpoolError that refused it."""

    def __init__(self, message: str, results: "list[Any]") -> None:
        super().__init__(message)
        self.results = results


class UnrecoverableError(Exception):
    """Raise it from a handler for a failure that retrying cannot fix (a bad
    address, a missing file): the job goes dead at once (`JOB.NACK ... DEAD`),
    with the message as its `last_error`."""


_PREFIXES: Dict[str, Type[SpoolError]] = {
    "STALE": StaleReceiptError,
    "NOJOB": NoJobError,
    "FULL": QueueFullError,
    "BADJSON": BadJsonError,
    "TOOBIG": TooBigError,
    "NOAUTH": AuthError,
    "WRONGPASS": AuthError,
    "NOPERM": AuthError,
    "WRONGTYPE": WrongTypeError,
    "CROSSSLOT": CrossSlotError,
    "ERR": ServerError,
}


def error_from_reply(text: str, feature: str = "") -> SpoolError:
    """The SpoolError for an error reply's text (`"FULL queue 'q' has ..."`).

    `feature`, when given, names what the request asked for that an older
    broker may not know: an "unknown command" or "unknown option" reply then
    becomes a NotSupportedError that says so."""
    prefix, _, rest = text.partition(" ")
    cls = _PREFIXES.get(prefix)
    if cls is None:
        # redis-py strips the prefixes it knows (ERR, NOAUTH, NOPERM, ...)
        cls, rest, prefix = ServerError, text, "ERR"
    lowered = rest.lower()
    if feature and cls is ServerError and (
        "unknown command" in lowered or "unknown option" in lowered or "is not a job id or receipt" in lowered
    ):
        return NotSupportedError(
            "this spoold does not support %s yet (it replied: %s); upgrade the broker" % (feature, rest),
            feature,
        )
    err = cls(text if cls is not ServerError else rest)
    err.code = prefix
    return err
