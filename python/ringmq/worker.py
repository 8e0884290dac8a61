"""A worker: runs a handler on every job of a queue, acks it when the
handler returns, nacks it with back-off when the handler raises, keeps
long jobs' leases alive, and stops gracefully on SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .client import Client, Consumer
from .errors import Closed, Error

__all__ = ["Worker", "Backoff"]

log = logging.getLogger("ringmq.worker")


@dataclass(frozen=True)
class Backoff:
    """When a failed job is ready again: ``initial * factor ** (n - 1)``
    seconds after its n-th failed delivery, at most ``maximum``."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0

    def delay(self, delivery_count: int) -> float:
        """Seconds to wait after the given delivery failed."""
        exp = min(max(delivery_count - 1, 0), 64)
        return float(min(self.initial * self.factor ** exp, self.maximum))


class _Running:
    """A job being handled, for the lease keeper."""

    __slots__ = ("job", "touch_at", "period")

    def __init__(self, job: Any) -> None:
        self.job = job
        self.period = max(job.lease_time, 0.2)
        self.touch_at = time.monotonic() + self.period / 2


class Worker:
    """Runs handler(job) for each job of queue in group.

    * The handler returns: the job is acked (acks are batched and sent
      without waiting; a lost ack only means a redelivery).
    * The handler raises: the job is nacked with the delay of ``backoff``
      for its delivery count, and the exception is logged; after the
      queue's max deliveries the broker dead-letters it, with the
      exception's text in the dead letter
      (:attr:`~ringmq.types.StoredMessage.last_error`).
    * A job that runs longer than half its lease has its lease extended
      (touched), up to the queue's max lease.
    * :meth:`stop` (or SIGTERM / SIGINT while :meth:`run` runs in the main
      thread) stops taking jobs, releases those delivered but not started
      (their delivery count unchanged), lets the running ones finish and
      be acked, and returns.

    Args:
        client: the connection (the worker subscribes on it).
        queue, group: where the jobs come from.
        handler: called with each :class:`ringmq.Job`; its return value is
            ignored.
        concurrency: handlers running at once, each in a thread of a pool
            (1: in the thread calling :meth:`run`).
        prefetch: jobs leased beyond those running, to hide the round trip
            (default: as many as concurrency).
        backoff: the nack delays.
        handle_signals: install SIGTERM and SIGINT handlers during
            :meth:`run` when it runs in the main thread.
    """

    def __init__(self, client: Client, queue: str, group: str,
                 handler: Callable[[Any], object], *, concurrency: int = 1,
                 prefetch: Optional[int] = None,
                 backoff: Backoff = Backoff(),
                 handle_signals: bool = True) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.client = client
        self.queue = queue
        self.group = group
        self.handler = handler
        self.concurrency = concurrency
        self.prefetch = concurrency if prefetch is None else prefetch
        self.backoff = backoff
        self.handle_signals = handle_signals
        #: Jobs handled, by outcome.
        self.succeeded = 0
        self.failed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[int, _Running] = {}
        self._acks: list[Any] = []
        self._slots = threading.Semaphore(concurrency)

    def stop(self) -> None:
        """Asks :meth:`run` to stop (from any thread or a signal
        handler)."""
        self._stop.set()
        self.client._core.wakeup()

    @property
    def stopping(self) -> bool:
        """True once asked to stop."""
        return self._stop.is_set()

    def run(self) -> None:
        """Subscribes and handles jobs until :meth:`stop`; then returns
        once the running jobs are settled."""
        old: dict[signal.Signals, Any] = {}
        if self.handle_signals and \
                threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                old[s] = signal.signal(s, lambda *_: self.stop())
        consumer = self.client.consume(self.queue, self.group,
                                       credit=self.concurrency + self.prefetch)
        keeper = threading.Thread(target=self._keep_leases, daemon=True,
                                  name="ringmq-worker-touch")
        keeper.start()
        pool = (ThreadPoolExecutor(self.concurrency,
                                   thread_name_prefix="ringmq-worker")
                if self.concurrency > 1 else None)
        try:
            self._loop(consumer, pool)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
            self._send_acks()
            self._stop.set()
            keeper.join()
            try:
                consumer.close()
                self.client.flush(timeout=5.0)
            except Error as e:
                log.warning("worker %s/%s: at stop: %s", self.queue,
                            self.group, e)
            for sig, h in old.items():
                signal.signal(sig, h)

    def _loop(self, consumer: Consumer, pool: Optional[ThreadPoolExecutor]
              ) -> None:
        while not self._stop.is_set():
            try:
                jobs = consumer.take(64 if pool is None else 1, timeout=0.1)
            except Closed:
                return
            for i, job in enumerate(jobs):
                if self._stop.is_set() or not self._free_slot(pool):
                    # Not started: back, and so are those still coming.
                    self._release(jobs[i:], consumer)
                    break
                if pool is None:
                    self._handle(job)
                else:
                    pool.submit(self._handle_slot, job)
            self._send_acks()
        consumer.set_credit(0)
        # Jobs delivered but not started go back, unharmed.
        left = consumer.take(1 << 20, timeout=0.05)
        self._release(left, consumer)

    def _free_slot(self, pool: Optional[ThreadPoolExecutor]) -> bool:
        """Waits for a free handler thread (always free inline); False
        when asked to stop first."""
        if pool is None:
            return True
        while not self._slots.acquire(timeout=0.1):
            if self._stop.is_set():
                return False
        return True

    def _release(self, jobs: list[Any], consumer: Consumer) -> None:
        if not jobs:
            return
        try:
            consumer.set_credit(0)
            self.client.release(jobs)
        except Error as e:
            log.warning("worker %s/%s: release at stop: %s", self.queue,
                        self.group, e)

    def _handle_slot(self, job: Any) -> None:
        try:
            self._handle(job)
        finally:
            self._slots.release()

    def _handle(self, job: Any) -> None:
        running = _Running(job)
        with self._lock:
            self._running[job.lease_id] = running
        try:
            self.handler(job)
        except Exception as e:  # a failed job, not a failed worker
            with self._lock:
                del self._running[job.lease_id]
            self.failed += 1
            self._fail(job, e)
            return
        with self._lock:
            del self._running[job.lease_id]
            self._acks.append(job)
        self.succeeded += 1

    def _fail(self, job: Any, e: BaseException) -> None:
        delay = self.backoff.delay(job.delivery_count)
        log.warning("worker %s/%s: job %d/%d (delivery %d) failed: %s; "
                    "again in %.1f s", self.queue, self.group, job.partition,
                    job.offset, job.delivery_count,
                    f"{type(e).__name__}: {e}", delay)
        try:
            job.nack(delay=delay, reason=f"{type(e).__name__}: {e}")
        except Error as err:
            log.warning("worker %s/%s: nack: %s", self.queue, self.group,
                        err)

    def _send_acks(self) -> None:
        with self._lock:
            acks, self._acks = self._acks, []
        if acks:
            try:
                self.client.ack_async(acks)
            except Error as e:  # their leases end; the jobs come again
                log.warning("worker %s/%s: ack: %s", self.queue, self.group,
                            e)

    def _keep_leases(self) -> None:
        """Touches the leases of jobs running past half their lease, and
        sends the acks of handlers that finished while run() waits."""
        while not self._stop.wait(0.05):
            now = time.monotonic()
            with self._lock:
                due = [r for r in self._running.values() if r.touch_at <= now]
            for r in due:
                try:
                    left = r.job.touch()
                except Error as e:
                    log.warning("worker %s/%s: touch: %s", self.queue,
                                self.group, e)
                    left = r.period
                r.touch_at = time.monotonic() + max(left, 0.2) / 2
            if self.concurrency > 1:
                self._send_acks()
