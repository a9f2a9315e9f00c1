"""Exceptions raised by the troupe runtime and by handlers.

Hierarchy::

    TroupeError
    ├── ConfigError            bad configuration value (names the field)
    ├── ServerError            embedded nats-server failed to start or stop
    │   └── TopologyMissing    a stream, bucket or consumer an actor binds to is missing
    ├── ConnectError           NATS unreachable after the configured attempts
    │   └── LoginRefused       NATS answered but refused the credentials
    ├── RequestError           answered to a requester as an ErrorReply
    │   ├── BadRequest         code=bad_request (also raised on decode failures)
    │   ├── NotFound           code=not_found
    │   ├── Conflict           code=conflict
    │   ├── Rejected           code=rejected
    │   ├── Forbidden          code=forbidden (also: NATS refused the publish)
    │   ├── Unavailable        code=unavailable (retryable)
    │   └── ArtifactCorrupt    stored artifact content is not its reference's (code=internal)
    └── HandlerSignal          control flow from a stream handler to the runtime
        ├── RetryLater         nak with a chosen delay, not counted as a failure
        └── DeadLetter         terminate and copy to the dead-letter subject

A :class:`RequestError` raised by a request handler becomes the typed
:class:`protocols.errors.ErrorReply`; any other exception becomes code
``internal`` with a generic message (``repr`` never crosses the wire). On the
requesting side :meth:`actors.runtime.bus.Bus.request` raises the matching
:class:`RequestError` subclass.
"""

from __future__ import annotations

from protocols.errors import ErrorCode, ErrorReply

__all__ = [
    "ArtifactCorrupt",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "ConnectError",
    "DeadLetter",
    "Forbidden",
    "HandlerSignal",
    "LoginRefused",
    "NotFound",
    "Rejected",
    "RequestError",
    "RetryLater",
    "ServerError",
    "TopologyMissing",
    "TroupeError",
    "Unavailable",
]


class TroupeError(Exception):
    """Base of every troupe exception."""


class ConfigError(TroupeError, ValueError):
    """A configuration value is invalid; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ServerError(TroupeError):
    """The embedded nats-server could not be started or stopped."""


class TopologyMissing(ServerError):
    """A stream, bucket, object store or consumer an actor binds to does not exist.

    Only ``troupe up`` / ``troupe init`` (as ``admin``) create the topology.
    """


class ConnectError(TroupeError):
    """NATS could not be reached."""


class LoginRefused(ConnectError):
    """NATS answered but refused the credentials."""


class RequestError(TroupeError):
    """A request failed; carries the wire :class:`ErrorReply` fields."""

    code: ErrorCode = "internal"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        retryable: bool | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable
        self.details = dict(details or {})

    def to_reply(self) -> ErrorReply:
        """Return the wire form of this error."""
        return ErrorReply(
            code=self.code, message=self.message, retryable=self.retryable, details=self.details
        )

    @staticmethod
    def from_reply(reply: ErrorReply) -> RequestError:
        """Return the exception matching a received :class:`ErrorReply`."""
        cls = _BY_CODE.get(reply.code, RequestError)
        return cls(reply.message, code=reply.code, retryable=reply.retryable, details=reply.details)


class BadRequest(RequestError):
    """The request could not be decoded or failed validation."""

    code: ErrorCode = "bad_request"


class NotFound(RequestError):
    """The thing asked for does not exist."""

    code: ErrorCode = "not_found"


class Conflict(RequestError):
    """The request conflicts with the current state."""

    code: ErrorCode = "conflict"


class Rejected(RequestError):
    """The request was understood and refused."""

    code: ErrorCode = "rejected"


class Forbidden(RequestError):
    """The caller may not do this: a token without the scope, or a NATS login
    the server refuses to let publish on the subject."""

    code: ErrorCode = "forbidden"


class Unavailable(RequestError):
    """A dependency is unavailable; trying again later may work."""

    code: ErrorCode = "unavailable"
    retryable = True


class ArtifactCorrupt(RequestError):
    """Stored artifact content does not match its reference (size or sha256 digest).

    A :class:`RequestError` of code ``internal``: whoever asked for the artifact
    gets an error answer naming it, never the bad bytes.
    """

    code: ErrorCode = "internal"


_BY_CODE: dict[str, type[RequestError]] = {
    "bad_request": BadRequest,
    "not_found": NotFound,
    "conflict": Conflict,
    "rejected": Rejected,
    "forbidden": Forbidden,
    "unavailable": Unavailable,
}


class HandlerSignal(TroupeError):
    """Raised by a stream handler to steer acknowledgement."""


class RetryLater(HandlerSignal):
    """Hand the message back to be redelivered after ``delay`` seconds."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {delay:.3f}s")
        self.delay = max(0.0, delay)
        self.reason = reason


class DeadLetter(HandlerSignal):
    """Terminate the message and copy it to the dead-letter subject."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
