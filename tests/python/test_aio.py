"""ringmq.aio against a real broker, under a real event loop: publish,
consume and settle; the loop wakes when the library asks; and the client
works inside FastAPI (uvicorn) and aiohttp applications."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import ringmq
import ringmq.aio


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_publish_consume_and_settle(broker, qname):
    async def main() -> None:
        async with await ringmq.aio.connect(broker.addr) as c:
            await c.create_queue(qname, partitions=2, lease=5)
            one = await c.publish(qname, b"first", key="k",
                                  headers={"h": "v"}, dedup_id="d")
            assert one.offset == 0
            again = await c.publish(qname, b"first", key="k", dedup_id="d")
            assert again == (one.partition, one.offset, True)
            rs = await asyncio.gather(*[c.publish(qname, b"m%d" % i)
                                        for i in range(5000)])
            assert len({(r.partition, r.offset) for r in rs}) == 5000
            many = await c.publish_many(qname, [b"x", ringmq.Message(b"y")])
            assert len(many) == 2
            cons = await c.consume(qname, "g", credit=100, timeout=1)
            got = 0
            first = None
            async for job in cons:
                if job.payload == b"first":
                    first = job
                    continue
                got += 1
                await job.ack()
            assert got == 5002 and first is not None
            assert first.headers == {"h": b"v"} and first.key == b"k"
            assert 4 < await first.touch(5) <= 5
            await first.nack(delay=0.2)
            again = await cons.get(timeout=5)
            assert again is not None and again.delivery_count == 2
            await again.release()
            again = await cons.get(timeout=5)
            assert again is not None and again.delivery_count == 2
            await c.ack([again])
            await cons.close()
            q = await c.admin(lambda a: a.queue(qname))
            assert q.ready == 0 and q.in_flight == 0
            with pytest.raises(ringmq.QueueNotFound):
                await c.publish("no-such-queue", b"x")
            with pytest.raises(ringmq.QueueNotFound):
                await c.consume("no-such-queue", "g")
    run(main())


def test_acking_more_than_one_request_holds_waits_for_all(broker, qname):
    """2,500 ids go as three requests (1,000 a request): the ack resolves
    once all three are answered."""
    async def main() -> None:
        async with await ringmq.aio.connect(broker.addr) as c:
            await c.create_queue(qname)
            await c.publish_many(qname, [b"x"] * 2500)
            cons = await c.consume(qname, "g", credit=2500)
            jobs = []
            while len(jobs) < 2500:
                job = await cons.get(timeout=5)
                assert job is not None
                jobs.append(job)
            await c.ack(jobs)
            g = await c.admin(lambda a: a.group(qname, "g"))
            assert g.lag == 0 and g.in_flight == 0
    run(main())


def test_the_loop_wakes_when_the_library_asks(broker, qname):
    """A lingering batch goes when its linger runs out, though the socket
    stays silent: the loop's timer, not a readable fd, serves it."""
    async def main() -> None:
        async with await ringmq.aio.connect(broker.addr, linger=0.3) as c:
            await c.create_queue(qname)
            await c.publish(qname, b"warm")  # learns the partition count
            t0 = time.monotonic()
            r = await asyncio.wait_for(c.publish(qname, b"x"), 5)
            took = time.monotonic() - t0
            assert r.offset == 1
            assert 0.25 <= took < 3.0
    run(main())


def test_a_full_buffer_waits_instead_of_blocking_the_loop(broker, qname):
    async def main() -> None:
        async with await ringmq.aio.connect(
                broker.addr, max_outstanding_bytes=2000) as c:
            await c.create_queue(qname)
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.001)

            t = asyncio.ensure_future(ticker())
            rs = await asyncio.gather(*[c.publish(qname, b"x" * 100)
                                        for _ in range(2000)])
            t.cancel()
            assert len(rs) == 2000 and ticks > 0
    run(main())


def free_socket() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


def test_fastapi_under_uvicorn(broker, qname):
    fastapi = pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    state: dict[str, Any] = {}

    async def startup() -> None:
        state["c"] = await ringmq.aio.connect(broker.addr)
        await state["c"].create_queue(qname)

    async def shutdown() -> None:
        await state["c"].close()

    app = fastapi.FastAPI(on_startup=[startup], on_shutdown=[shutdown])

    @app.post("/jobs/{name}", status_code=202)
    async def submit(name: str) -> dict[str, Any]:
        p = await state["c"].publish(qname, name, dedup_id=name)
        return {"id": name, "partition": p.partition, "offset": p.offset}

    async def main() -> None:
        sock = free_socket()
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning",
                                               lifespan="on"))
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        async with aiohttp.ClientSession() as http:
            async def post(i: int) -> int:
                async with http.post(
                        f"http://127.0.0.1:{port}/jobs/j{i}") as r:
                    await r.json()
                    return r.status
            codes = await asyncio.gather(*[post(i) for i in range(200)])
        assert set(codes) == {202}
        server.should_exit = True
        await task
        sock.close()

    run(main())
    with ringmq.Client(broker.addr) as c:
        assert c.queue(qname).messages == 200


def test_aiohttp_application(broker, qname):
    async def main() -> None:
        c = await ringmq.aio.connect(broker.addr)
        await c.create_queue(qname)

        async def submit(request: web.Request) -> web.Response:
            body = await request.read()
            p = await c.publish(qname, body)
            return web.json_response({"offset": p.offset}, status=202)

        app = web.Application()
        app.router.add_post("/jobs", submit)
        runner = web.AppRunner(app)
        await runner.setup()
        sock = free_socket()
        site = web.SockSite(runner, sock)
        await site.start()
        port = sock.getsockname()[1]
        async with aiohttp.ClientSession() as http:
            async def post(i: int) -> int:
                async with http.post(f"http://127.0.0.1:{port}/jobs",
                                     data=b"%d" % i) as r:
                    return r.status
            codes = await asyncio.gather(*[post(i) for i in range(200)])
        assert set(codes) == {202}
        cons = await c.consume(qname, "g", timeout=1)
        got = []
        async for j in cons:
            got.append(int(j.payload))
            await j.ack()
        got.sort()
        assert got == list(range(200))
        await runner.cleanup()
        await c.close()

    run(main())
