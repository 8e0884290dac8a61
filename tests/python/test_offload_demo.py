"""The offload demo (examples/offload) end to end, on a real broker: the
web tier answers uploads with 202 at once, workers make every thumbnail
exactly once, a worker killed mid-job has its job done by another, and a
web process killed and replaced loses nothing."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest

import ringmq

for _module in ("fastapi", "uvicorn", "PIL", "aiohttp"):
    pytest.importorskip(_module)

import aiohttp  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "offload"
sys.path.insert(0, str(EXAMPLE))
from images import make_photo  # noqa: E402

UPLOADS = 50
QUEUE = "thumbnails"


class Script:
    """A script of the example run as a child process: stdout to a file
    (read for its start-up line), stopped by its PID only."""

    def __init__(self, tmp: Path, name: str, *args: str) -> None:
        self.out = tmp / f"{name}.{time.monotonic_ns()}.out"
        self.err = self.out.with_suffix(".err")
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(EXAMPLE / name), *args], stdout=out,
                stderr=err, stdin=subprocess.DEVNULL, cwd=EXAMPLE)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for(self, pattern: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.out.read_text())
            if m:
                return m.group(1)
            assert self.proc.poll() is None, self.err.read_text()[-2000:]
            time.sleep(0.05)
        raise AssertionError(f"no /{pattern}/: {self.err.read_text()}")

    def terminate(self, timeout: float = 15.0) -> Optional[int]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9: no goodbye, no release of its jobs."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Demo:
    """A web process and workers of the example on one broker."""

    def __init__(self, broker_addr: str, tmp: Path) -> None:
        self.broker = broker_addr
        self.tmp = tmp
        self.data = tmp / "data"
        self.scripts: list[Script] = []
        self.url = ""

    def flags(self) -> list[str]:
        return ["--broker", self.broker, "--data", str(self.data),
                "--queue", QUEUE]

    def start_web(self) -> Script:
        web = Script(self.tmp, "web.py", "--port", "0", *self.flags())
        self.scripts.append(web)
        self.url = web.wait_for(r"listening on (http://\S+)")
        return web

    def start_worker(self, *extra: str) -> Script:
        worker = Script(self.tmp, "worker.py", *self.flags(), *extra)
        self.scripts.append(worker)
        worker.wait_for(r"(consuming)")
        return worker

    def stop(self) -> None:
        for s in reversed(self.scripts):
            s.terminate()

    def executions(self, event: str) -> list[list[str]]:
        """The fields of the worker log's lines of one event."""
        log = self.data / "executions.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [line.split()[1:] for line in lines
                if line.startswith(event + " ")]


@pytest.fixture
def demo(broker, tmp_path: Path) -> Iterator[Demo]:
    d = Demo(broker.addr, tmp_path)
    yield d
    d.stop()


# ------------------------------------------------------------ HTTP client

async def upload_all(url: str, ids: list[str], photo: bytes,
                     parallel: int = 10) -> list[tuple[int, dict]]:
    """POSTs the photo once per id, parallel at a time."""
    gate = asyncio.Semaphore(parallel)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async def one(job_id: str) -> tuple[int, dict]:
            async with gate:
                async with http.post(
                        f"{url}/jobs", data=photo,
                        headers={"Content-Type": "image/jpeg",
                                 "Idempotency-Key": job_id}) as r:
                    return r.status, await r.json()
        return await asyncio.gather(*(one(i) for i in ids))


async def wait_all_done(url: str, ids: list[str],
                        timeout: float = 40.0) -> dict[str, str]:
    """Polls GET /jobs/{id} until every job is done (or the deadline);
    returns the last status of each."""
    status = {i: "" for i in ids}
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            for job_id in [i for i, s in status.items() if s != "done"]:
                async with http.get(f"{url}/jobs/{job_id}") as r:
                    assert r.status == 200, (job_id, r.status)
                    status[job_id] = (await r.json())["status"]
            if all(s == "done" for s in status.values()):
                break
            await asyncio.sleep(0.2)
    return status


def upload(url: str, ids: list[str]) -> None:
    results = asyncio.run(upload_all(url, ids, make_photo(7)))
    failed = [(i, s, b) for i, (s, b) in zip(ids, results) if s != 202]
    assert not failed, failed[:3]
    assert [b["id"] for _, b in results] == ids


def wait_done(url: str, ids: list[str]) -> None:
    status = asyncio.run(wait_all_done(url, ids))
    pending = {i: s for i, s in status.items() if s != "done"}
    assert not pending, list(pending.items())[:5]


# ------------------------------------------------------------------ tests

def test_uploads_are_accepted_at_once_and_each_job_runs_once(demo, broker):
    started = time.monotonic()
    demo.start_web()
    workers = [demo.start_worker(), demo.start_worker()]
    ids = [f"job-{n:03d}" for n in range(UPLOADS)]

    upload(demo.url, ids)
    # A client retrying with the same ids gets the same jobs, not new ones.
    again = asyncio.run(upload_all(demo.url, ids[:5], make_photo(7)))
    assert [(s, b["duplicate"]) for s, b in again] == [(202, True)] * 5
    wait_done(demo.url, ids)

    for w in workers:  # graceful: they finish and ack what they hold
        assert w.terminate() == 0, w.err.read_text()[-2000:]
    done = demo.executions("done")
    runs = {i: sum(1 for f in done if f[0] == i) for i in ids}
    assert {i: n for i, n in runs.items() if n != 1} == {}
    assert len(done) == UPLOADS
    assert {f[1] for f in done} <= {str(w.pid) for w in workers}
    for job_id in ids:
        png = demo.data / "results" / f"{job_id}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with ringmq.Client(broker.addr) as c:
        q = c.queue(QUEUE)
        assert (q.ready, q.in_flight, q.delayed) == (0, 0, 0)
        assert c.group(QUEUE, "thumbnailers").lag == 0
    assert time.monotonic() - started < 60


def test_thumbnail_is_served_once_done(demo):
    demo.start_web()
    demo.start_worker()
    upload(demo.url, ["one"])
    wait_done(demo.url, ["one"])

    async def get(path: str) -> tuple[int, str, bytes]:
        async with aiohttp.ClientSession() as http:
            async with http.get(demo.url + path) as r:
                return r.status, r.content_type, await r.read()

    status, ctype, body = asyncio.run(get("/jobs/one/thumbnail"))
    assert (status, ctype, body[:4]) == (200, "image/png", b"\x89PNG")
    assert asyncio.run(get("/jobs/nope"))[0] == 404


def test_a_worker_killed_mid_job_has_its_job_done_by_another(demo, broker):
    with ringmq.Client(broker.addr) as c:
        # A short lease: the job is free again soon after its worker dies.
        c.create_queue(QUEUE, partitions=4, lease=2, max_deliveries=5)
    demo.start_web()
    slow = demo.start_worker("--extra-seconds", "60")
    upload(demo.url, ["crash"])
    deadline = time.monotonic() + 20
    while ["crash", str(slow.pid), "1"] not in demo.executions("start"):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)

    slow.kill()
    fresh = demo.start_worker()
    wait_done(demo.url, ["crash"])

    assert fresh.terminate() == 0
    done = demo.executions("done")
    # Done once, by the second worker, on the job's second delivery.
    assert [f[:3] for f in done] == [["crash", str(fresh.pid), "2"]]


def test_a_web_process_killed_and_replaced_loses_nothing(demo):
    first = demo.start_web()
    ids = [f"w{n}" for n in range(10)]
    upload(demo.url, ids)  # accepted: in the broker, no worker yet
    first.kill()

    demo.start_web()  # a new process, a new port, the same broker
    demo.start_worker()
    wait_done(demo.url, ids)
    assert len(demo.executions("done")) == len(ids)
