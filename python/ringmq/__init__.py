"""ringmq: the Python client of the ringmq job queue and message broker.

A thin layer over libringmq, the C client library: one client core for
every language. Publish jobs from a web tier and return at once; consume
them in workers that ack when done and get them again if they crash::

    import ringmq

    with ringmq.Client("127.0.0.1:7420") as client:
        client.create_queue("thumbnails", partitions=4)
        client.publish("thumbnails", b'{"image": "a.png"}',
                       dedup_id="upload-1234")

        def make_thumbnail(job: ringmq.Job) -> None:
            ...  # raise to fail the job: it comes back with back-off

        ringmq.Worker(client, "thumbnails", "thumbs", make_thumbnail,
                      concurrency=4).run()

Parts:

* :class:`Client`: the synchronous client, shared safely by threads;
  :class:`Consumer` and :class:`Job` for consuming.
* :class:`Worker`: ack on return, nack with back-off on exception, lease
  kept alive, graceful stop on SIGTERM.
* :mod:`ringmq.aio`: the asyncio client, driven by the event loop.
* :mod:`ringmq.errors`: one exception class per status code.
* :mod:`ringmq.types`: the plain values calls return.
"""

from __future__ import annotations

from . import errors, types
from ._admin import ADMIN, ALL, CONSUME, PUBLISH
from ._ringmq import library_version
from .client import Client, Consumer, Job, connection_options
from .errors import (AlreadyExists, Closed, ConnectionLost, Error,
                     GroupNotFound, InvalidArgument, LeaseExpired,
                     MessageNotFound, MessageTooLarge, NotFound, NotLeased,
                     NotOwner, PermissionDenied, QueueExists, QueueFull, QueueNotFound,
                     QuotaExceeded, StorageFull, Timeout, Unauthenticated,
                     Unreachable, UsageError)
from .types import (GroupInfo, Message, Published, QueueDetail, QueueInfo,
                    QueueSettings, StoredMessage, UserInfo)
from .worker import Backoff, Worker

__version__ = library_version()

__all__ = [
    "Client", "Consumer", "Job", "Worker", "Backoff", "Message",
    "Published", "QueueInfo", "QueueDetail", "QueueSettings", "GroupInfo",
    "StoredMessage", "UserInfo", "connection_options", "library_version",
    "PUBLISH", "CONSUME", "ADMIN", "ALL", "errors", "types",
    "Error", "NotFound", "QueueNotFound", "GroupNotFound", "MessageNotFound",
    "AlreadyExists", "QueueExists", "QueueFull", "NotOwner", "StorageFull",
    "LeaseExpired", "NotLeased", "MessageTooLarge", "InvalidArgument",
    "PermissionDenied", "Unauthenticated", "QuotaExceeded", "Timeout",
    "Closed", "Unreachable", "ConnectionLost", "UsageError",
]
