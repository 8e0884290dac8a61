"""ringmq.Worker against a real broker: ack on return, nack with back-off
on exception, dead letters, leases kept alive, concurrency, and a
graceful stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, Callable

import ringmq


def run_until(worker: ringmq.Worker, done: Callable[[], bool],
              limit: float = 20.0) -> None:
    """Runs the worker in a thread until done() or limit seconds."""
    t = threading.Thread(target=worker.run)
    t.start()
    deadline = time.monotonic() + limit
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    t.join(10)
    assert not t.is_alive(), "the worker did not stop"
    assert done(), "the worker did not finish its jobs in time"


def test_acks_on_return_and_nacks_with_backoff_on_raise(broker, qname):
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname, max_deliveries=10)
        c.publish_many(qname, [b"ok1", b"flaky", b"ok2"])
        seen: list[tuple[bytes, int, float]] = []

        def handler(job: Any) -> None:
            seen.append((job.payload, job.delivery_count, time.monotonic()))
            if job.payload == b"flaky" and job.delivery_count < 3:
                raise RuntimeError(f"attempt {job.delivery_count}")

        w = ringmq.Worker(c, qname, "g", handler,
                          backoff=ringmq.Backoff(initial=0.2, factor=2.0))
        run_until(w, lambda: w.succeeded == 3)
        flaky = [s for s in seen if s[0] == b"flaky"]
        assert [s[1] for s in flaky] == [1, 2, 3]
        # 0.2 s after the first failure, 0.4 s after the second.
        assert flaky[1][2] - flaky[0][2] >= 0.18
        assert flaky[2][2] - flaky[1][2] >= 0.38
        assert w.failed == 2
        g = c.group(qname, "g")
        assert g.lag == 0 and g.in_flight == 0


def test_a_job_failing_every_time_is_dead_lettered(broker, qname):
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname, max_deliveries=2)
        c.publish(qname, b"poison")

        def handler(job: Any) -> None:
            raise ValueError("cannot parse the upload")

        w = ringmq.Worker(c, qname, "g", handler,
                          backoff=ringmq.Backoff(initial=0.05))
        run_until(w, lambda: w.failed == 2)
        dead: list[ringmq.StoredMessage] = []
        deadline = time.monotonic() + 5
        while not dead and time.monotonic() < deadline:
            dead = c.dead_letters(qname)
        assert [d.payload for d in dead] == [b"poison"]
        assert dead[0].reason == "max_deliveries"
        assert dead[0].last_error == "ValueError: cannot parse the upload"


def test_a_long_job_keeps_its_lease(broker, qname):
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname, lease=1.0)
        c.publish(qname, b"slow")
        calls: list[int] = []

        def handler(job: Any) -> None:
            calls.append(job.delivery_count)
            time.sleep(2.5)  # well past the 1 s lease

        w = ringmq.Worker(c, qname, "g", handler)
        run_until(w, lambda: w.succeeded == 1)
        time.sleep(1.2)  # an expired lease would redeliver by now
        assert calls == [1]
        g = c.group(qname, "g")
        assert g.lag == 0 and g.ready == 0


def test_concurrency_runs_handlers_at_once(broker, qname):
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname, partitions=2)
        c.publish_many(qname, [b"%d" % i for i in range(8)])
        running = [0]
        peak = [0]
        lock = threading.Lock()

        def handler(job: Any) -> None:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.3)
            with lock:
                running[0] -= 1

        w = ringmq.Worker(c, qname, "g", handler, concurrency=4)
        t0 = time.monotonic()
        run_until(w, lambda: w.succeeded == 8)
        assert peak[0] == 4
        assert time.monotonic() - t0 < 2.0  # 8 x 0.3 s in pairs of 4
        assert c.group(qname, "g").lag == 0


WORKER_MAIN = textwrap.dedent("""
    import sys, time, ringmq
    addr, queue, mark = sys.argv[1:4]
    c = ringmq.Client(addr)
    def handler(job):
        with open(mark, "a") as f:
            f.write(job.text + "\\n")
        time.sleep(1.0)
    w = ringmq.Worker(c, queue, "g", handler, prefetch=5)
    w.run()
    print("stopped", w.succeeded, flush=True)
    c.close()
""")


def test_sigterm_finishes_the_running_job_and_releases_the_rest(broker,
                                                                qname,
                                                                tmp_path):
    mark = tmp_path / "started"
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname)
        c.publish_many(qname, [f"job{i}" for i in range(6)])
        env = dict(os.environ)
        p = subprocess.Popen(
            [sys.executable, "-c", WORKER_MAIN, broker.addr, qname,
             str(mark)], stdout=subprocess.PIPE, text=True, env=env)
        try:
            deadline = time.monotonic() + 10
            while not mark.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert mark.exists(), "the worker never started a job"
            time.sleep(0.2)  # the first job runs; five more are leased
            p.send_signal(signal.SIGTERM)
            out, _ = p.communicate(timeout=10)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0
        assert out.split() == ["stopped", "1"]
        started = mark.read_text().split()
        assert started == ["job0"]
        # The running job was acked; the others came back untouched.
        with c.consume(qname, "g", credit=10, timeout=1) as cons:
            rest = list(cons)
        assert sorted(j.text for j in rest) == [f"job{i}" for i in range(1, 6)]
        assert all(j.delivery_count == 1 for j in rest)


def test_a_stop_releases_every_prefetched_job(broker, qname):
    """Stopped at its first job with 199 prefetched (more than one take
    holds), the worker hands back every one it did not start."""
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname)
        c.publish_many(qname, [f"job{i}" for i in range(200)])
        w: ringmq.Worker

        def handler(job: Any) -> None:
            w.stop()

        w = ringmq.Worker(c, qname, "g", handler, prefetch=199)
        run_until(w, lambda: w.succeeded == 1)
        with ringmq.Client(broker.addr) as other:
            got = []
            with other.consume(qname, "g", credit=500, timeout=1) as cons:
                for job in cons:
                    assert job.delivery_count == 1
                    got.append(job)
            assert len(got) == 199
