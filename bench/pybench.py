#!/usr/bin/env python3
"""ringmq-pybench: the Python package's load generator, beside
ringmq-bench. One process, one client, 256-byte jobs by default, against
a running broker; prints a summary and one line "RESULT key=value ...".

Modes:
  sync    publish() one at a time (window 1)
  async   publish_async() futures, at most --window unconfirmed
  many    publish_many() in lists of --window
  aio     ringmq.aio publish(), at most --window awaited at once
  worker  a queue filled first, then ringmq.Worker with a no-op handler
          (prefetch --prefetch) drains it: jobs/s handled and acked
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import time
from concurrent.futures import Future
from typing import Any, Deque

import ringmq
import ringmq.aio


def publish_sync(c: ringmq.Client, q: str, n: int, payload: bytes,
                 window: int) -> None:
    for _ in range(n):
        c.publish(q, payload)


def publish_async(c: ringmq.Client, q: str, n: int, payload: bytes,
                  window: int) -> None:
    pending: Deque[Future[ringmq.Published]] = collections.deque()
    for _ in range(n):
        if len(pending) >= window:
            pending.popleft().result()
        pending.append(c.publish_async(q, payload))
    c.flush()
    for f in pending:
        f.result()


def publish_many(c: ringmq.Client, q: str, n: int, payload: bytes,
                 window: int) -> None:
    for i in range(0, n, window):
        c.publish_many(q, [payload] * min(window, n - i))


def publish_aio(addr: str, q: str, n: int, payload: bytes,
                window: int) -> None:
    async def main() -> None:
        async with await ringmq.aio.connect(addr) as c:
            room = asyncio.Semaphore(window)

            async def one() -> None:
                try:
                    await c.publish(q, payload)
                finally:
                    room.release()

            tasks = set()
            for _ in range(n):
                await room.acquire()
                t = asyncio.ensure_future(one())
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
    asyncio.run(main())


def drain_worker(c: ringmq.Client, q: str, n: int, prefetch: int) -> float:
    done = 0

    def handler(job: Any) -> None:
        nonlocal done
        done += 1
        if done >= n:
            w.stop()

    w = ringmq.Worker(c, q, "bench", handler, prefetch=prefetch,
                      handle_signals=False)
    t0 = time.perf_counter()
    w.run()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", default="async",
                    choices=["sync", "async", "many", "aio", "worker"])
    ap.add_argument("--server", default="127.0.0.1:7420")
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--prefetch", type=int, default=256)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--linger-ms", type=float, default=0.0)
    a = ap.parse_args()

    q = f"pybench-{os.getpid()}-{a.mode}"
    payload = os.urandom(a.size // 2).hex().encode()[:a.size]
    with ringmq.Client(a.server, linger=a.linger_ms / 1000.0) as c:
        c.create_queue(q, partitions=a.partitions)
        try:
            if a.mode == "worker":
                publish_many(c, q, a.messages, payload, 1000)
                secs = drain_worker(c, q, a.messages, a.prefetch)
                left = c.group(q, "bench").lag
            else:
                t0 = time.perf_counter()
                if a.mode == "aio":
                    publish_aio(a.server, q, a.messages, payload, a.window)
                else:
                    {"sync": publish_sync, "async": publish_async,
                     "many": publish_many}[a.mode](c, q, a.messages,
                                                   payload, a.window)
                secs = time.perf_counter() - t0
                left = a.messages - c.queue(q).messages
        finally:
            c.delete_queue(q)
    rate = a.messages / secs
    print(f"{a.mode}: {a.messages} messages of {a.size} bytes in "
          f"{secs:.2f} s: {rate:,.0f}/s")
    print(f"RESULT mode={a.mode} messages={a.messages} size={a.size} "
          f"window={a.window} secs={secs:.3f} msgs_per_s={rate:.0f} "
          f"missing={left}")
    return 0 if left == 0 else 2


if __name__ == "__main__":
    sys.exit(main())
