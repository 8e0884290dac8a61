"""The exceptions of ringmq: one class per status code of the broker and
the library, under :class:`Error`.

Every exception carries ``code`` (the number, as in ``ringmq.h`` and the
wire protocol), ``name`` (``"QUEUE_FULL"``) and ``message`` (the broker's
text, or the library's). ``retryable`` says whether the same call may
succeed if made again later (a full queue, a lost connection, a quota):
a publish retried with the same ``dedup_id`` is stored once.
"""

from __future__ import annotations

from . import _ringmq

__all__ = [
    "Error",
    "ProtocolError",
    "NotFound",
    "QueueNotFound",
    "GroupNotFound",
    "MessageNotFound",
    "UserNotFound",
    "AlreadyExists",
    "QueueExists",
    "UserExists",
    "QueueFull",
    "NotOwner",
    "StorageFull",
    "LeaseExpired",
    "NotLeased",
    "MessageTooLarge",
    "InvalidArgument",
    "TooManyConnections",
    "ShuttingDown",
    "InternalError",
    "PermissionDenied",
    "Unauthenticated",
    "QuotaExceeded",
    "WouldBlock",
    "Timeout",
    "Closed",
    "Unreachable",
    "ConnectionLost",
    "UsageError",
    "LocalIOError",
    "from_code",
]


class Error(Exception):
    """Base of every ringmq error.

    Attributes:
        code: the status code (``ringmq.errors.Error.code``), an int.
        name: its protocol name, such as ``"QUEUE_FULL"``.
        message: what the broker or the library said.
    """

    #: Whether making the same call again later may succeed.
    retryable: bool = False

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.code = code
        self.name = name
        self.message = message


class ProtocolError(Error):
    """The broker and this client disagree on the protocol (BAD_FRAME,
    UNSUPPORTED_VERSION, NOT_HELLO)."""


class NotFound(Error):
    """Something named does not exist."""


class QueueNotFound(NotFound):
    """No such queue (or it was deleted while subscribed)."""


class GroupNotFound(NotFound):
    """No such consumer group (or it was deleted while subscribed)."""


class MessageNotFound(NotFound):
    """No message at that partition and offset."""


class UserNotFound(NotFound):
    """No such user."""


class AlreadyExists(Error):
    """Something to create exists already, with other settings."""


class QueueExists(AlreadyExists):
    """The queue exists with other settings."""


class UserExists(AlreadyExists):
    """The user exists."""


class NotOwner(Error):
    """Cluster mode: the partition is served by another broker; ask any
    broker for the cluster's metadata and publish there."""

    retryable = True


class QueueFull(Error):
    """Over the queue's max depth or max bytes; retry once consumers catch
    up."""

    retryable = True


class StorageFull(Error):
    """The broker is near its storage limit."""

    retryable = True


class LeaseExpired(Error):
    """The lease ran out before it was settled: the job is delivered
    again."""


class NotLeased(Error):
    """Not leased to this connection (never delivered, settled already,
    or its lease died with an earlier connection)."""


class InvalidArgument(Error, ValueError):
    """The broker refused an argument."""


class MessageTooLarge(InvalidArgument):
    """Over the broker's announced message or batch limits (decided before
    sending)."""


class TooManyConnections(Error):
    """The broker has as many connections as it takes."""

    retryable = True


class ShuttingDown(Error):
    """The broker is shutting down."""

    retryable = True


class InternalError(Error):
    """The broker failed, or memory ran out."""


class PermissionDenied(Error):
    """This user may not do that, or the client is on another host while
    the broker has no authentication configured."""


class Unauthenticated(Error):
    """Authentication is required or failed (unknown user or wrong
    password: the same answer for both)."""


class QuotaExceeded(Error):
    """Over one of the user's quotas."""

    retryable = True


class WouldBlock(Error):
    """The outgoing buffer is full (``block_when_full=False``)."""

    retryable = True


class Timeout(Error, TimeoutError):
    """No answer in time. The request may still take effect."""

    retryable = True


class Closed(Error):
    """The client was closed."""


class Unreachable(Error, ConnectionError):
    """No broker could be connected to."""

    retryable = True


class ConnectionLost(Error, ConnectionError):
    """The connection dropped before the answer: the request may or may
    not have taken effect."""

    retryable = True


class UsageError(Error, ValueError):
    """A bad argument, decided locally: nothing was sent."""


class LocalIOError(Error, OSError):
    """Local input or output failed."""


_BY_CODE: dict[int, type[Error]] = {
    _ringmq.BAD_FRAME: ProtocolError,
    _ringmq.UNSUPPORTED_VERSION: ProtocolError,
    _ringmq.NOT_HELLO: ProtocolError,
    _ringmq.QUEUE_NOT_FOUND: QueueNotFound,
    _ringmq.QUEUE_EXISTS: QueueExists,
    _ringmq.QUEUE_FULL: QueueFull,
    _ringmq.STORAGE_FULL: StorageFull,
    _ringmq.LEASE_EXPIRED: LeaseExpired,
    _ringmq.NOT_LEASED: NotLeased,
    _ringmq.GROUP_NOT_FOUND: GroupNotFound,
    _ringmq.MESSAGE_NOT_FOUND: MessageNotFound,
    _ringmq.MESSAGE_TOO_LARGE: MessageTooLarge,
    _ringmq.INVALID_ARGUMENT: InvalidArgument,
    _ringmq.TOO_MANY_CONNECTIONS: TooManyConnections,
    _ringmq.SHUTTING_DOWN: ShuttingDown,
    _ringmq.INTERNAL: InternalError,
    _ringmq.PERMISSION_DENIED: PermissionDenied,
    _ringmq.UNAUTHENTICATED: Unauthenticated,
    _ringmq.QUOTA_EXCEEDED: QuotaExceeded,
    _ringmq.USER_NOT_FOUND: UserNotFound,
    _ringmq.USER_EXISTS: UserExists,
    _ringmq.NOT_OWNER: NotOwner,
    _ringmq.WOULD_BLOCK: WouldBlock,
    _ringmq.TIMEOUT: Timeout,
    _ringmq.CLOSED: Closed,
    _ringmq.UNREACHABLE: Unreachable,
    _ringmq.CONNECTION_LOST: ConnectionLost,
    _ringmq.USAGE: UsageError,
    _ringmq.IO: LocalIOError,
}


def from_code(code: int, name: str | None = None, message: str = "") -> Error:
    """The exception for a status code (an unknown code gives
    :class:`Error`)."""
    if name is None:
        name = _ringmq.code_name(code)
    if not message:
        message = _ringmq.strerror(code)
    return _BY_CODE.get(code, Error)(code, name, message)


_ringmq._set_error_factory(from_code)
