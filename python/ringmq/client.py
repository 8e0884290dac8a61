"""The synchronous client: :class:`Client` and its :class:`Consumer`."""

from __future__ import annotations

import collections
import threading
import time
import weakref
from concurrent.futures import Future
from typing import (Any, Deque, Iterable, Iterator, Mapping, Optional,
                    Sequence, Union)

from . import _ringmq
from ._admin import Admin
from .errors import Closed, Error, GroupNotFound, QueueNotFound, from_code
from .types import Data, Message, Published

__all__ = ["Client", "Consumer", "Job", "connection_options"]

#: A delivery leased to this client (the C type ``ringmq.Job``).
Job = _ringmq.Job

_START = {"earliest": 0, "latest": 1}


def _start_of(start: str) -> int:
    """The library's start position for a new group's start name."""
    try:
        return _START[start]
    except KeyError:
        raise ValueError("start must be 'earliest' or 'latest'") from None


def _secs_ms(name: str, seconds: Optional[float]) -> Optional[str]:
    if seconds is None:
        return None
    if seconds < 0:
        raise ValueError(f"{name} must not be negative")
    return str(round(seconds * 1000))


def connection_options(
        servers: Union[str, Sequence[str]] = "127.0.0.1:7420", *,
        user: Optional[str] = None, password: Optional[str] = None,
        password_file: Optional[str] = None, tls: bool = False,
        tls_ca: Optional[str] = None, tls_cert: Optional[str] = None,
        tls_key: Optional[str] = None,
        tls_server_name: Optional[str] = None, tls_verify: bool = True,
        client_name: Optional[str] = None, connect_timeout: float = 5.0,
        request_timeout: float = 5.0, reconnect: bool = True,
        linger: Optional[float] = None,
        batch_max_messages: Optional[int] = None,
        max_outstanding_bytes: Optional[int] = None,
        block_when_full: bool = True, ping_interval: Optional[float] = None,
        auto_touch: bool = False,
        options: Optional[Mapping[str, str]] = None) -> list[tuple[str, str]]:
    """The library's connection options (``ringmq_opts_set`` names and
    values) for the keyword arguments of :class:`Client`."""
    if not isinstance(servers, str):
        servers = ",".join(servers)
    o: list[tuple[str, Optional[str]]] = [
        ("server", servers),
        ("user", user),
        ("password", password),
        ("password-file", password_file),
        ("client-name", client_name),
        ("connect-timeout-ms", _secs_ms("connect_timeout", connect_timeout)),
        ("request-timeout-ms", _secs_ms("request_timeout", request_timeout)),
        ("reconnect", "true" if reconnect else "false"),
        ("linger-ms", _secs_ms("linger", linger)),
        ("batch-max-messages",
         None if batch_max_messages is None else str(batch_max_messages)),
        ("max-outstanding-bytes",
         None if max_outstanding_bytes is None
         else str(max_outstanding_bytes)),
        ("block-when-full", "true" if block_when_full else "false"),
        ("ping-interval-ms", _secs_ms("ping_interval", ping_interval)),
        ("auto-touch", "true" if auto_touch else "false"),
    ]
    if tls:
        o += [("tls", "true"), ("tls-ca", tls_ca), ("tls-cert", tls_cert),
              ("tls-key", tls_key), ("tls-server-name", tls_server_name),
              ("tls-verify", "true" if tls_verify else "false")]
    elif tls_ca or tls_cert or tls_key or tls_server_name:
        raise ValueError("the tls_* options need tls=True")
    out = [(k, v) for k, v in o if v is not None]
    if options:
        out += list(options.items())
    return out


def _published(code: int, partition: int, offset: int, duplicate: bool,
               text: str) -> Published:
    if code != _ringmq.OK:
        raise from_code(code, None, text)
    return Published(partition, offset, duplicate)


class _Router:
    """Hands deliveries to the consumer of their subscription.

    The library hands out every subscription's deliveries through one
    queue (``ringmq_next``): a consumer that takes one meant for another
    parks it here, and the other takes it on its next turn.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.parked: dict[int, Deque[Any]] = {}
        self.ended: dict[int, Error] = {}
        # Ids are not reused on a client: what comes for a closed
        # consumer is left to expire.
        self.closed: set[int] = set()

    def add(self, sub: int) -> None:
        with self.lock:
            # Another consumer may have parked its first jobs already:
            # they can arrive before subscribe() returns here.
            self.parked.setdefault(sub, collections.deque())

    def park(self, job: Any) -> None:
        """Keeps a job for its consumer (lock held)."""
        if job.subscription not in self.closed:
            self.parked.setdefault(job.subscription,
                                   collections.deque()).append(job)

    def remove(self, sub: int) -> None:
        with self.lock:
            self.closed.add(sub)
            self.parked.pop(sub, None)
            self.ended.pop(sub, None)


class Client(Admin):
    """A connection to a ringmq broker, shared safely by threads.

    Wraps one ``ringmq_client`` of libringmq: it reconnects by itself
    (with back-off), resends unanswered publishes so that each is stored
    once, and answers the broker's keepalives. Every call that waits for
    the broker releases the GIL.

    Args:
        servers: ``"host:port"``, a comma-separated list, or a list; tried
            in turn (default ``127.0.0.1:7420``).
        user, password, password_file: credentials for a broker run with
            ``--auth on`` (default: ``RINGMQ_USER`` and
            ``RINGMQ_PASSWORD_FILE``). Only a SCRAM proof crosses the wire.
        tls, tls_ca, tls_cert, tls_key, tls_server_name, tls_verify: speak
            TLS to the broker's TLS listener; the broker's certificate must
            chain to ``tls_ca`` (default: the system's CAs) and carry the
            server's name; a client certificate when the broker asks.
        client_name: shown in the broker's logs.
        connect_timeout, request_timeout: seconds per address, per answer.
        reconnect: connect again after a loss (default True).
        linger: seconds an asynchronous publish waits for others to share
            its batch (library default 0.005).
        batch_max_messages, max_outstanding_bytes, block_when_full: the
            asynchronous producer's batch and buffer limits.
        ping_interval: seconds of silence before a keepalive (15).
        auto_touch: extend every delivered job's lease until it is settled.
        options: more library options by name (``ringmq_opts_set``).

    Raises:
        Unreachable: no broker answered.
        Unauthenticated, PermissionDenied: the broker refused this client.
        UsageError: a bad option.

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, servers: Union[str, Sequence[str]] = "127.0.0.1:7420",
                 **kwargs: Any) -> None:
        self._core = _ringmq.Client(connection_options(servers, **kwargs))
        self._router = _Router()
        self._poller: Optional[threading.Thread] = None
        self._poller_lock = threading.Lock()
        self._closed = False
        # Futures not yet resolved: the library counts a publish answered
        # before the thread that took its report has run the callback.
        self._unresolved = 0
        self._resolved = threading.Condition()

    # ------------------------------------------------------------ basics

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection. Unanswered asynchronous publishes fail
        with :class:`~ringmq.errors.Closed` (they may or may not have been
        stored: :meth:`flush` first). Leased jobs are delivered again.
        Idempotent."""
        self._closed = True
        self._core.close()
        poller = self._poller
        if poller is not None and poller is not threading.current_thread():
            poller.join()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def info(self) -> dict[str, Any]:
        """The connection's server address, producer id, the broker's
        limits, and the publishes not yet answered."""
        return self._core.info()

    def ping(self) -> None:
        """One round trip to the broker."""
        self._core.ping()

    # ----------------------------------------------------------- publish

    def publish(self, queue: str, payload: Data, *, key: Optional[Data] = None,
                headers: Optional[Mapping[str, Data]] = None,
                dedup_id: Optional[str] = None, delay: Optional[float] = None,
                deliver_at: Optional[float] = None) -> Published:
        """Publishes one message and waits for its confirmation (durable
        in the broker's sync mode).

        Args:
            queue: the queue's name.
            payload: bytes, or str (sent as UTF-8).
            key: picks the partition by hash (same key, same order).
            headers: names to values; ``ringmq-*`` names are reserved.
            dedup_id: the broker stores a message once per id within the
                queue's dedup window: retry with it after an error.
            delay: seconds before it is ready.
            deliver_at: when it is ready, seconds since the epoch.

        Returns:
            Its :class:`~ringmq.types.Published` partition and offset.

        Raises:
            QueueNotFound, QueueFull, StorageFull, MessageTooLarge,
            Timeout (it may still be stored), ConnectionLost, Unreachable.
        """
        return Published(*self._core.publish(queue, payload, key, headers,
                                             dedup_id, delay, deliver_at))

    def publish_many(self, queue: str,
                     messages: Iterable[Union[Data, Message]], *,
                     raise_on_error: bool = True
                     ) -> list[Union[Published, Error]]:
        """Publishes messages to one queue, pipelined in batches of the
        broker's limits, and waits for every confirmation. Order is kept
        within a partition.

        Args:
            messages: payloads, or :class:`~ringmq.types.Message` objects.
            raise_on_error: raise the first failure (default); with False,
                the list holds an exception in place of each failed one.

        Returns:
            One :class:`~ringmq.types.Published` (or error) per message, in
            order.
        """
        items = [m._item() if isinstance(m, Message) else m for m in messages]
        out: list[Union[Published, Error]] = []
        for code, part, off, dup, text in self._core.publish_batch(queue,
                                                                   items):
            if code == _ringmq.OK:
                out.append(Published(part, off, dup))
            else:
                err = from_code(code, None, text)
                if raise_on_error:
                    raise err
                out.append(err)
        return out

    def publish_async(self, queue: str, payload: Data, *,
                      key: Optional[Data] = None,
                      headers: Optional[Mapping[str, Data]] = None,
                      dedup_id: Optional[str] = None,
                      delay: Optional[float] = None,
                      deliver_at: Optional[float] = None
                      ) -> Future[Published]:
        """Queues a message and returns at once; the library batches it
        with others of its partition and resends it after a reconnect, so
        that it is stored once.

        Returns:
            A :class:`concurrent.futures.Future` resolved with its
            :class:`~ringmq.types.Published` or the error. A background
            thread of this client serves the connection and completes the
            futures; :meth:`flush` waits for all of them.

        Raises:
            QueueNotFound (first publish to a queue), MessageTooLarge,
            WouldBlock or Timeout when the outgoing buffer stays full.
        """
        fut: Future[Published] = Future()

        def done(code: int, partition: int, offset: int, duplicate: bool,
                 text: str) -> None:
            try:
                if code == _ringmq.OK:
                    fut.set_result(Published(partition, offset, duplicate))
                else:
                    fut.set_exception(from_code(code, None, text))
            finally:
                self._resolve_one()

        with self._resolved:
            self._unresolved += 1
        try:
            self._core.publish_async(queue, payload, key, headers, dedup_id,
                                     delay, deliver_at, done)
        except BaseException:
            self._resolve_one()
            raise
        self._start_poller()
        return fut

    def _resolve_one(self) -> None:
        with self._resolved:
            self._unresolved -= 1
            if self._unresolved == 0:
                self._resolved.notify_all()

    def flush(self, timeout: Optional[float] = None) -> None:
        """Sends queued asynchronous publishes and acks at once and waits
        until each is answered (through reconnects).

        Raises:
            Timeout: still unanswered after timeout seconds (they stay
                queued and will still be reported).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self._core.flush(-1 if timeout is None else round(timeout * 1000))
        # Reports another thread took are resolved once it runs them.
        with self._resolved:
            left = None if deadline is None else deadline - time.monotonic()
            if not self._resolved.wait_for(lambda: self._unresolved == 0,
                                           left):
                raise from_code(_ringmq.TIMEOUT, None,
                                "publishes still unresolved")

    def _start_poller(self) -> None:
        if self._poller is not None:
            return
        with self._poller_lock:
            if self._poller is None and not self._closed:
                # A weak reference: a client dropped without close() is
                # still collected, and closing it ends the thread.
                t = threading.Thread(target=_serve,
                                     args=(weakref.ref(self), self._core),
                                     daemon=True, name="ringmq-client")
                t.start()
                self._poller = t

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None:
            core.close()

    # ----------------------------------------------------------- consume

    def consume(self, queue: str, group: str, *, credit: int = 64,
                start: str = "earliest",
                timeout: Optional[float] = None) -> Consumer:
        """Subscribes to queue in a consumer group (made if new, from the
        earliest retained message or the next one published) and returns
        a :class:`Consumer`: iterate it for jobs, and ack each.

        Args:
            credit: jobs leased to this consumer at once (prefetch).
            start: ``"earliest"`` or ``"latest"`` for a new group.
            timeout: stop iterating after this many seconds without a job
                (None: wait for ever).
        """
        sub = self._core.subscribe(queue, group, credit, _start_of(start))
        self._router.add(sub)
        return Consumer(self, sub, queue, group, timeout)

    def _take(self, sub: int, timeout: Optional[float],
              max_jobs: int) -> list[Any]:
        """Up to max_jobs deliveries of subscription sub, waiting at most
        timeout seconds (None: no limit) for the first."""
        r = self._router
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with r.lock:
                mine = r.parked.get(sub)
                if mine:
                    return [mine.popleft()
                            for _ in range(min(max_jobs, len(mine)))]
                if sub in r.ended:
                    raise r.ended[sub]
                shared = len(r.parked) > 1
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return []
            # Others' deliveries may be parked for us while we wait: wait
            # in short turns when the client is shared.
            wait_ms = -1 if left is None else round(left * 1000)
            if shared and (wait_ms < 0 or wait_ms > 20):
                wait_ms = 20
            try:
                jobs = self._core.next(wait_ms, max_jobs)
            except (GroupNotFound, QueueNotFound):
                self._note_ended()
                continue
            if all(j.subscription == sub for j in jobs):
                if jobs:
                    return jobs
                continue
            with r.lock:
                for j in jobs:
                    r.park(j)

    def _note_ended(self) -> None:
        r = self._router
        with r.lock:
            for sub in list(r.parked):
                code, text = self._core.subscription_status(sub)
                if code != _ringmq.OK and sub not in r.ended:
                    r.ended[sub] = from_code(code, None, text)

    # ------------------------------------------------------------ settle

    def ack(self, jobs: Iterable[Any]) -> None:
        """Acks many jobs in one request (per broker batch limit) and
        waits; raises the first failure (LeaseExpired, NotLeased...)."""
        self._settle("ack", jobs, 0)

    def nack(self, jobs: Iterable[Any], delay: float = 0.0,
             reason: Optional[str] = None) -> None:
        """Nacks many jobs: ready again after delay seconds. reason goes
        into the dead letter (``ringmq-last-error``) of a job this nack
        dead-letters."""
        self._settle("nack", jobs, round(delay * 1000), reason)

    def release(self, jobs: Iterable[Any]) -> None:
        """Releases many jobs: ready again at once, delivery counts
        unchanged."""
        self._settle("release", jobs, 0)

    def ack_async(self, jobs: Iterable[Any]) -> None:
        """Acks jobs without waiting for the broker (an ack lost with the
        connection means a redelivery, which at-least-once allows)."""
        self._core.ack_async([j.lease_id for j in jobs])
        self._start_poller()

    def _settle(self, op: str, jobs: Iterable[Any], arg: int,
                reason: Optional[str] = None) -> None:
        ids = [j.lease_id for j in jobs]
        rc, codes, _ = self._core.settle(op, ids, arg, reason)
        if rc != _ringmq.OK:
            raise from_code(rc)


def _serve(client: "weakref.ref[Client]", core: _ringmq.Client) -> None:
    """Serves a client's connection while it is open: lingering batches,
    answers, keepalives; completes futures."""
    while True:
        c = client()
        if c is None or c._closed:
            return
        del c
        try:
            core.poll(100)
        except Closed:
            return


class Consumer:
    """A subscription of a :class:`Client`: an iterator of jobs.

    Each job is leased to this client until it is acked, nacked, released
    or its lease runs out (then it is delivered again). Use it as a
    context manager, or call :meth:`close`, to end the subscription.
    """

    def __init__(self, client: Client, subscription: int, queue: str,
                 group: str, timeout: Optional[float]) -> None:
        self.client = client
        #: The subscription id its jobs carry.
        self.subscription = subscription
        self.queue = queue
        self.group = group
        self.timeout = timeout
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        jobs = self.client._take(self.subscription, self.timeout, 1)
        if not jobs:
            raise StopIteration
        return jobs[0]

    def get(self, timeout: Optional[float] = None) -> Optional[Any]:
        """The next job, or None after timeout seconds without one."""
        jobs = self.client._take(self.subscription, timeout, 1)
        return jobs[0] if jobs else None

    def take(self, max_jobs: int,
             timeout: Optional[float] = None) -> list[Any]:
        """Up to max_jobs jobs: waits at most timeout seconds for the
        first, not at all for the rest."""
        return self.client._take(self.subscription, timeout, max_jobs)

    def set_credit(self, credit: int) -> None:
        """Sets how many jobs may be leased to it at once (0 pauses)."""
        self.client._core.set_credit(self.subscription, credit)

    def close(self) -> None:
        """Ends the subscription; jobs it holds stay leased until settled
        or expired. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.client._core.unsubscribe(self.subscription)
        except Closed:
            pass
        finally:
            self.client._router.remove(self.subscription)

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
