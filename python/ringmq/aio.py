"""asyncio: :class:`Client` driven by the event loop through the client's
socket, with no thread per call.

The loop watches the socket (``add_reader``) and wakes at the time the
library asks for (``ringmq_client_poll_timeout``: a batch's linger, a
keepalive, a quota hold, a reconnect attempt); each wake serves the client
without waiting (``poll(0)``), which completes publish futures and hands
deliveries to their consumers. Calls with no asynchronous form in the
library (connect, subscribe, nack, release, touch, administration) run in
the loop's default executor.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import threading
from typing import (Any, AsyncIterator, Callable, Deque, Iterable, Mapping,
                    Optional, Sequence, TypeVar, Union)

from . import _ringmq
from .client import Client as SyncClient, _start_of, connection_options
from .errors import (Closed, Error, GroupNotFound, QueueNotFound, WouldBlock,
                     from_code)
from .types import Data, Message, Published

__all__ = ["Client", "Consumer", "Job", "connect"]

T = TypeVar("T")


class Job:
    """A job delivered to an asyncio consumer: the fields of
    :class:`ringmq.Job`, and awaitable settling."""

    __slots__ = ("_job", "_client")

    def __init__(self, job: Any, client: Client) -> None:
        self._job = job
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)

    def __repr__(self) -> str:
        return repr(self._job)

    @property
    def job(self) -> Any:
        """The underlying :class:`ringmq.Job`."""
        return self._job

    async def ack(self) -> None:
        """Acks; resolves when the broker confirmed it."""
        await self._client._ack([self._job.lease_id])

    async def nack(self, delay: float = 0.0,
                   reason: Optional[str] = None) -> None:
        """Nacks: ready again after delay seconds (reason: as
        :meth:`ringmq.Job.nack`)."""
        await self._client._blocking(functools.partial(
            self._job.nack, delay=delay, reason=reason))

    async def release(self) -> None:
        """Releases: ready again at once, delivery count unchanged."""
        await self._client._blocking(self._job.release)

    async def touch(self, lease: Optional[float] = None) -> float:
        """Extends the lease; returns the seconds left."""
        left: float = await self._client._blocking(
            functools.partial(self._job.touch, lease=lease))
        return left


class Consumer:
    """An asyncio subscription: ``async for job in consumer``."""

    def __init__(self, client: Client, subscription: int,
                 timeout: Optional[float]) -> None:
        self.client = client
        self.subscription = subscription
        self.timeout = timeout
        self._jobs: Deque[Any] = collections.deque()
        self._waiter: Optional[asyncio.Future[None]] = None
        self._ended: Optional[Error] = None
        self._closed = False

    def _push(self, job: Any) -> None:
        self._jobs.append(job)
        self._wake()

    def _end(self, err: Error) -> None:
        self._ended = err
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __aiter__(self) -> AsyncIterator[Job]:
        return self

    async def __anext__(self) -> Job:
        job = await self.get(self.timeout)
        if job is None:
            raise StopAsyncIteration
        return job

    async def get(self, timeout: Optional[float] = None) -> Optional[Job]:
        """The next job, or None after timeout seconds without one."""
        while not self._jobs:
            if self._closed:
                return None
            if self._ended is not None:
                raise self._ended
            self._waiter = self.client._loop.create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout)
            except asyncio.TimeoutError:
                return None
            finally:
                self._waiter = None
        return Job(self._jobs.popleft(), self.client)

    async def set_credit(self, credit: int) -> None:
        """Sets how many jobs may be leased at once (0 pauses)."""
        await self.client._blocking(functools.partial(
            self.client._core.set_credit, self.subscription, credit))

    async def close(self) -> None:
        """Ends the subscription (jobs held stay leased until settled or
        expired)."""
        if self._closed:
            return
        self._closed = True
        self.client._consumers.pop(self.subscription, None)
        self._wake()
        try:
            await self.client._blocking(functools.partial(
                self.client._core.unsubscribe, self.subscription))
        except Closed:
            pass

    async def __aenter__(self) -> Consumer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def connect(servers: Union[str, Sequence[str]] = "127.0.0.1:7420",
                  **kwargs: Any) -> Client:
    """Connects (in the executor) and returns a :class:`Client` driven by
    the running loop. Takes the keyword arguments of
    :class:`ringmq.Client` (``linger`` defaults to 0 here)."""
    loop = asyncio.get_running_loop()
    # An awaited publish goes at once, as a synchronous one does; those of
    # one loop turn still share a batch (the client is served once per
    # turn).
    kwargs.setdefault("linger", 0.0)
    opts = connection_options(servers, **kwargs)
    # A full buffer must not block the loop: publish() waits for room.
    opts.append(("block-when-full", "false"))
    core = await loop.run_in_executor(None, _ringmq.Client, opts)
    return Client(core, loop)


class Client:
    """A ringmq client for asyncio; make it with :func:`connect` (or
    ``async with await ringmq.aio.connect(...)``).

    Publishes are asynchronous publishes of the library whose reports
    resolve asyncio futures; acks are asynchronous acks. Administration
    calls are those of :class:`ringmq.Client` (run in the executor) under
    :attr:`admin`: ``await client.admin(lambda a: a.queues())``.
    """

    def __init__(self, core: _ringmq.Client,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._core = core
        self._loop = loop
        self._fd = -1
        self._timer: Optional[asyncio.TimerHandle] = None
        self._kick: Optional[asyncio.Handle] = None
        self._consumers: dict[int, Consumer] = {}
        self._room: Optional[asyncio.Future[None]] = None
        self._known: set[str] = set()
        self._learning: dict[str, asyncio.Future[None]] = {}
        self._closed = False
        self._sync = SyncClient.__new__(SyncClient)
        self._sync._core = core
        self._thread = threading.get_ident()
        self._rearm()

    def _in_loop(self, fn: Callable[[], None]) -> None:
        """Runs fn in the loop's thread: library callbacks run in the
        thread that served the client, which is an executor's for flush
        and close."""
        if threading.get_ident() == self._thread:
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    # ----------------------------------------------------------- driving

    def _rearm(self) -> None:
        """Watches the current socket and sets the timer the library asks
        for."""
        if self._closed:
            return
        fd = self._core.fd()
        if fd != self._fd:
            if self._fd >= 0:
                self._loop.remove_reader(self._fd)
            if fd >= 0:
                self._loop.add_reader(fd, self._serve)
            self._fd = fd
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        t = self._core.poll_timeout()
        if self._fd < 0 and t < 0:
            t = 100  # not connected and no attempt due: look again
        if t >= 0:
            self._timer = self._loop.call_later(t / 1000.0, self._serve)

    def _serve(self) -> None:
        self._kick = None
        if self._closed:
            return
        try:
            self._core.poll(0)
            if self._consumers:
                self._deliver()
        except Closed:
            return
        finally:
            room = self._room
            if room is not None and not room.done():
                room.set_result(None)
            self._room = None
        self._rearm()

    def _deliver(self) -> None:
        while True:
            try:
                jobs = self._core.next(0, 256)
            except (GroupNotFound, QueueNotFound):
                for sub, cons in list(self._consumers.items()):
                    code, text = self._core.subscription_status(sub)
                    if code != _ringmq.OK:
                        cons._end(from_code(code, None, text))
                continue
            if not jobs:
                return
            for j in jobs:
                to = self._consumers.get(j.subscription)
                if to is not None:
                    to._push(j)

    def _schedule(self) -> None:
        """Serves soon: what this loop turn queued goes as one batch."""
        if self._kick is None and not self._closed:
            self._kick = self._loop.call_soon(self._serve)

    async def _blocking(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise from_code(_ringmq.CLOSED, None, "the client is closed")
        try:
            return await self._loop.run_in_executor(None, fn)
        finally:
            self._schedule()

    # ----------------------------------------------------------- publish

    async def publish(self, queue: str, payload: Data, *,
                      key: Optional[Data] = None,
                      headers: Optional[Mapping[str, Data]] = None,
                      dedup_id: Optional[str] = None,
                      delay: Optional[float] = None,
                      deliver_at: Optional[float] = None) -> Published:
        """Publishes one message; resolves with its
        :class:`~ringmq.types.Published` once the broker confirmed it (the
        arguments and errors of :meth:`ringmq.Client.publish`). Messages
        published in the same loop turn share a batch."""
        fut: asyncio.Future[Published] = self._loop.create_future()
        loop_thread = self._thread

        def settle(code: int, partition: int, offset: int, duplicate: bool,
                   text: str) -> None:
            if fut.done():
                return
            if code == _ringmq.OK:
                fut.set_result(Published(partition, offset, duplicate))
            else:
                fut.set_exception(from_code(code, None, text))

        def done(code: int, partition: int, offset: int, duplicate: bool,
                 text: str) -> None:
            # Reports run where the client was served: the loop's thread,
            # but an executor's for flush and close.
            if threading.get_ident() == loop_thread:
                settle(code, partition, offset, duplicate, text)
            else:
                self._loop.call_soon_threadsafe(settle, code, partition,
                                                offset, duplicate, text)

        if queue in self._known and self._room is None and not self._closed:
            # The common case, with no coroutine of its own.
            try:
                self._core.publish_async(queue, payload, key, headers,
                                         dedup_id, delay, deliver_at, done)
                self._schedule()
                return await fut
            except WouldBlock:
                pass
        call = functools.partial(self._core.publish_async, queue, payload,
                                 key, headers, dedup_id, delay, deliver_at,
                                 done)
        await self._enqueue(queue, call)
        return await fut

    async def _enqueue(self, queue: str, call: Callable[[], None]) -> None:
        if self._closed:
            raise from_code(_ringmq.CLOSED, None, "the client is closed")
        while queue not in self._known:
            # The first publish to a queue asks its partition count with
            # a synchronous request: not on the loop. The others wait for
            # it (a failed one leaves the next to try).
            learning = self._learning.get(queue)
            if learning is not None:
                await asyncio.shield(learning)
                continue
            learning = self._loop.create_future()
            self._learning[queue] = learning
            try:
                await self._blocking(call)
                self._known.add(queue)
                return
            except WouldBlock:
                self._known.add(queue)  # learnt; only the buffer is full
            finally:
                del self._learning[queue]
                learning.set_result(None)
        while True:
            try:
                call()
                break
            except WouldBlock:
                if self._room is None:
                    self._room = self._loop.create_future()
                self._schedule()
                await self._room
        self._schedule()

    async def publish_many(self, queue: str,
                           messages: Iterable[Union[Data, Message]]
                           ) -> list[Published]:
        """Publishes messages and resolves when all are confirmed; raises
        the first failure."""
        futs = [self.publish(queue, *((m.payload,) if isinstance(m, Message)
                                      else (m,)),
                             **(_fields(m) if isinstance(m, Message) else {}))
                for m in messages]
        return list(await asyncio.gather(*futs))

    async def flush(self, timeout: Optional[float] = None) -> None:
        """Waits until every publish and ack is answered."""
        await self._blocking(functools.partial(
            self._core.flush, -1 if timeout is None else round(timeout * 1000)))

    # ----------------------------------------------------------- consume

    async def consume(self, queue: str, group: str, *, credit: int = 64,
                      start: str = "earliest",
                      timeout: Optional[float] = None) -> Consumer:
        """Subscribes and returns a :class:`Consumer` (``async for``)."""
        sub: int = await self._blocking(functools.partial(
            self._core.subscribe, queue, group, credit, _start_of(start)))
        cons = Consumer(self, sub, timeout)
        self._consumers[sub] = cons
        self._schedule()
        return cons

    async def _ack(self, ids: list[int]) -> None:
        if not ids:
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        left = [len(ids)]  # the library may split them into requests
        bad: list[int] = []

        def settle(codes: list[int]) -> None:
            bad.extend(c for c in codes if c != _ringmq.OK)
            left[0] -= len(codes)
            if left[0] > 0 or fut.done():
                return
            if bad:
                fut.set_exception(from_code(bad[0]))
            else:
                fut.set_result(None)

        def done(lease_ids: list[int], codes: list[int]) -> None:
            self._in_loop(lambda: settle(codes))

        self._core.ack_async(ids, done)
        self._schedule()
        await fut

    async def ack(self, jobs: Iterable[Job]) -> None:
        """Acks many jobs in one request."""
        await self._ack([j.lease_id for j in jobs])

    # ------------------------------------------------------------- admin

    async def admin(self, call: Callable[[SyncClient], T]) -> T:
        """Runs an administration call of :class:`ringmq.Client` in the
        executor: ``await c.admin(lambda a: a.create_queue("jobs"))``."""
        return await self._blocking(functools.partial(call, self._sync))

    async def create_queue(self, name: str, **settings: Any) -> None:
        """:meth:`ringmq.Client.create_queue`, awaited."""
        await self.admin(lambda a: a.create_queue(name, **settings))

    # ------------------------------------------------------------- close

    async def close(self) -> None:
        """Closes the connection; unanswered publishes fail with
        Closed."""
        if self._closed:
            return
        self._closed = True
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._fd = -1
        if self._timer is not None:
            self._timer.cancel()
        for cons in list(self._consumers.values()):
            cons._end(from_code(_ringmq.CLOSED, None, "the client is closed"))
        self._consumers.clear()
        await self._loop.run_in_executor(None, self._core.close)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _fields(m: Message) -> dict[str, Any]:
    return {"key": m.key, "headers": m.headers, "dedup_id": m.dedup_id,
            "delay": m.delay, "deliver_at": m.deliver_at}

