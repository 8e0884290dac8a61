"""A broker killed with kill -9 while Python producers publish: no
confirmed job is lost, and producers that retry with their dedup ids put
no duplicate in front of the workers."""

from __future__ import annotations

import threading
import time

import ringmq

PRODUCERS = 4
PER_PRODUCER = 400


def test_kill_9_mid_publish_loses_nothing_confirmed_and_duplicates_nothing(
        durable_broker, qname):
    b = durable_broker
    confirmed: set[str] = set()
    lock = threading.Lock()
    failures: list[str] = []

    with ringmq.Client(b.addr) as admin:
        admin.create_queue(qname, partitions=2)

    def produce(t: int) -> None:
        # Each producer its own client, as separate web processes would.
        with ringmq.Client(b.addr, request_timeout=2.0,
                           connect_timeout=1.0) as c:
            for i in range(PER_PRODUCER):
                job = f"{t}-{i}"
                deadline = time.monotonic() + 60
                while True:
                    try:
                        c.publish(qname, job, dedup_id=job)
                        break
                    except ringmq.Error as e:
                        # Unconfirmed: it may or may not be stored. The
                        # same dedup id makes the retry safe.
                        if not e.retryable or time.monotonic() > deadline:
                            failures.append(f"{job}: {e!r}")
                            return
                        time.sleep(0.05)
                with lock:
                    confirmed.add(job)

    threads = [threading.Thread(target=produce, args=(t,))
               for t in range(PRODUCERS)]
    for t in threads:
        t.start()
    # Kill it once a good part is confirmed, with publishes in flight.
    deadline = time.monotonic() + 60
    while len(confirmed) < PRODUCERS * PER_PRODUCER // 3:
        assert time.monotonic() < deadline, "publishes stalled"
        time.sleep(0.005)
    b.kill()
    killed_at = len(confirmed)
    time.sleep(0.3)
    b.start()  # same address, same data directory
    for t in threads:
        t.join(120)
    assert not failures, failures[:5]
    assert 0 < killed_at < PRODUCERS * PER_PRODUCER
    assert len(confirmed) == PRODUCERS * PER_PRODUCER

    seen: dict[str, int] = {}
    with ringmq.Client(b.addr) as c:
        with c.consume(qname, "workers", credit=500, timeout=2) as cons:
            for job in cons:
                seen[job.text] = seen.get(job.text, 0) + 1
                c.ack_async([job])
        c.flush(timeout=10)
    assert confirmed <= set(seen), sorted(confirmed - set(seen))[:5]
    dups = [k for k, n in seen.items() if n > 1]
    assert not dups, dups[:5]
