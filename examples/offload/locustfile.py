"""Locust load for the offload demo.

Two kinds of users:

* ``WebUploader`` drives the web tier over HTTP: POST /jobs with a
  generated photo, then GET /jobs/{id} a few times (OFFLOAD_POLLS)::

      locust -f locustfile.py WebUploader --host http://127.0.0.1:8000

* ``BrokerPublisher`` and ``BrokerConsumer`` drive the broker directly
  through the ringmq package, with a custom client that reports every
  publish and every consume+ack as a Locust request (type "ringmq"), so
  Locust's statistics, CSV files and charts work as for HTTP::

      RINGMQ_ADDR=127.0.0.1:7420 locust -f locustfile.py \\
          BrokerPublisher BrokerConsumer

  They use their own queue (OFFLOAD_DIRECT_QUEUE, default
  ``locust-direct``): the demo's workers would fail on jobs naming no
  upload.

Environment: OFFLOAD_USER_RATE (tasks per second per user, default 1),
OFFLOAD_POLLS (status polls after each upload, default 1),
OFFLOAD_PAYLOAD_BYTES (direct publish size, default 100),
OFFLOAD_REQUEST_LOG: a file to which every request is appended as
``unix_time,type,name,ms,ok`` (run-demo draws latency over time from it),
and OFFLOAD_STATS_CSV: a file for Locust's final statistics, in the format
of --csv's _stats.csv (Locust 2.12 writes that file once a second and not
at the end, so it misses the last second of requests).
"""

from __future__ import annotations

import csv
import functools
import os
import random
import time
import uuid
from typing import Any, Optional, TextIO

from locust import (FastHttpUser, User, constant, constant_throughput,
                    events, task)
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

import ringmq
from images import make_photo

USER_RATE = float(os.environ.get("OFFLOAD_USER_RATE", "1"))
POLLS = int(os.environ.get("OFFLOAD_POLLS", "1"))
DIRECT_QUEUE = os.environ.get("OFFLOAD_DIRECT_QUEUE", "locust-direct")
PAYLOAD_BYTES = int(os.environ.get("OFFLOAD_PAYLOAD_BYTES", "100"))
PHOTO_VARIANTS = 4


@functools.lru_cache(maxsize=None)
def photo(i: int) -> bytes:
    return make_photo(i)


@events.test_start.add_listener
def make_photos(**_: Any) -> None:
    # Before the users start: making one takes ~0.1 s, during which no
    # greenlet runs and every request in flight looks slow.
    for i in range(PHOTO_VARIANTS):
        photo(i)


def random_phase() -> None:
    """Locust starts a spawn-rate's worth of users at the same instant,
    and constant_throughput keeps them in step: 20 uploads at once every
    period, which measures a burst queue, not the service. A random
    phase spreads independent users out, as real ones are."""
    time.sleep(random.uniform(0, 1 / USER_RATE))  # gevent's sleep


# ------------------------------------------------------------- the web tier

class WebUploader(FastHttpUser):
    """A user uploading photos to the web tier."""

    wait_time = constant_throughput(USER_RATE)

    def on_start(self) -> None:
        random_phase()

    @task
    def upload(self) -> None:
        # The client picks the id: a retry after a lost answer names the
        # same job, and the broker stores it once.
        job_id = uuid.uuid4().hex
        body = photo(hash(job_id) % PHOTO_VARIANTS)
        with self.client.post("/jobs", data=body, name="POST /jobs",
                              headers={"Content-Type": "image/jpeg",
                                       "Idempotency-Key": job_id},
                              catch_response=True) as r:
            if r.status_code != 202:
                r.failure(f"status {r.status_code}")
                return
        for _ in range(POLLS):
            with self.client.get(f"/jobs/{job_id}", name="GET /jobs/[id]",
                                 catch_response=True) as r:
                if r.status_code != 200:
                    r.failure(f"status {r.status_code}")


# --------------------------------------------------- the broker, directly

class RingmqLocustClient:
    """ringmq.Client calls timed and reported as Locust requests.

    Locust runs users as gevent greenlets. The ringmq client is a C
    extension: it releases the GIL while it waits for the broker, but
    gevent cannot switch greenlets during that wait, so each call blocks
    every user of this Locust process for its duration. That is fine for
    short calls (a publish waits about a millisecond for a local broker;
    consume waits at most CONSUME_WAIT), but it means one Locust process
    is one serial producer: for more concurrency run Locust distributed
    (--master and --worker processes), and keep users few per process.
    """

    CONSUME_WAIT = 0.005

    def __init__(self, addr: str, environment: Any) -> None:
        self.client = ringmq.Client(addr, client_name="locust")
        self.events = environment.events
        self.consumer: Optional[ringmq.Consumer] = None

    def _report(self, name: str, started: float, length: int,
                exc: Optional[BaseException]) -> None:
        self.events.request.fire(
            request_type="ringmq", name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length, exception=exc, context={})

    def create_queue(self, queue: str) -> None:
        try:
            self.client.create_queue(queue, partitions=4)
        except ringmq.QueueExists:
            pass

    def publish(self, queue: str, payload: bytes, **kwargs: Any) -> None:
        started = time.perf_counter()
        try:
            self.client.publish(queue, payload, **kwargs)
        except ringmq.Error as e:
            self._report("publish", started, len(payload), e)
        else:
            self._report("publish", started, len(payload), None)

    def consume_ack(self, queue: str, group: str) -> bool:
        """Takes one job and acks it; False (and no report) when none
        was ready within CONSUME_WAIT."""
        if self.consumer is None:
            self.consumer = self.client.consume(queue, group, credit=8)
        started = time.perf_counter()
        try:
            job = self.consumer.get(timeout=self.CONSUME_WAIT)
            if job is None:
                return False
            job.ack()
        except ringmq.Error as e:
            self._report("consume+ack", started, 0, e)
            return True
        self._report("consume+ack", started, len(job.payload), None)
        return True

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
        self.client.close()


def broker_address(host: Optional[str]) -> str:
    """--host ringmq://HOST:PORT, or else RINGMQ_ADDR."""
    if host and host.startswith("ringmq://"):
        return host[len("ringmq://"):]
    return os.environ.get("RINGMQ_ADDR", "127.0.0.1:7420")


class RingmqUser(User):
    """A Locust user with a ringmq client as self.client."""

    abstract = True

    def on_start(self) -> None:
        self.client = RingmqLocustClient(broker_address(self.host),
                                         self.environment)
        self.client.create_queue(DIRECT_QUEUE)

    def on_stop(self) -> None:
        self.client.close()


class BrokerPublisher(RingmqUser):
    """Publishes small jobs straight to the broker (what one web request
    costs the broker, without HTTP)."""

    wait_time = constant_throughput(USER_RATE)

    def on_start(self) -> None:
        super().on_start()
        random_phase()

    @task
    def publish(self) -> None:
        job_id = uuid.uuid4().hex
        payload = job_id.encode().ljust(PAYLOAD_BYTES, b".")
        self.client.publish(DIRECT_QUEUE, payload, dedup_id=job_id)


class BrokerConsumer(RingmqUser):
    """Takes and acks the jobs of BrokerPublisher."""

    wait_time = constant(0)

    @task
    def consume(self) -> None:
        if not self.client.consume_ack(DIRECT_QUEUE, "locust"):
            time.sleep(0.05)  # gevent's sleep: other users run meanwhile


# ------------------------------------------- every request, for run-demo

_request_log: list[Optional[TextIO]] = [None]


@events.init.add_listener
def open_request_log(environment: Any, **_: Any) -> None:
    path = os.environ.get("OFFLOAD_REQUEST_LOG")
    if path:
        _request_log[0] = open(path, "a", buffering=1 << 16)


@events.request.add_listener
def log_request(request_type: str, name: str, response_time: float,
                exception: Optional[BaseException] = None,
                **_: Any) -> None:
    f = _request_log[0]
    if f is not None:
        f.write(f"{time.time():.3f},{request_type},{name},"
                f"{response_time:.2f},{0 if exception else 1}\n")


@events.quitting.add_listener
def close_request_log(**_: Any) -> None:
    f = _request_log[0]
    if f is not None:
        _request_log[0] = None
        f.close()


@events.quitting.add_listener
def write_final_stats(environment: Any, **_: Any) -> None:
    path = os.environ.get("OFFLOAD_STATS_CSV")
    if path:
        with open(path, "w", newline="") as f:
            StatsCSV(environment, PERCENTILES_TO_REPORT).requests_csv(
                csv.writer(f))
