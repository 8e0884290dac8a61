#!/usr/bin/python3
"""The web tier of the offload demo: takes an image upload, stores it,
publishes a thumbnail job to ringmq and answers 202 Accepted at once.

It keeps no state of its own: uploads and thumbnails live in the shared
data directory (standing in for object storage) and the jobs in the
broker, so web processes can be killed, restarted and multiplied freely.

    POST /jobs                 body: the image (raw, or multipart field
                               "image"); header Idempotency-Key: ID to make
                               a retry safe. 202 {"id", "status", ...}
    GET  /jobs/{id}            200 {"id", "status": pending|done|failed}
    GET  /jobs/{id}/thumbnail  the PNG, once done
    GET  /healthz              200 once connected to the broker

Run it with ``./web.py --port 8000`` (flags below, or environment
variables), or as ``uvicorn web:app`` configured by environment alone.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
from typing import Callable, Optional, Sequence

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

import ringmq
import ringmq.aio
from common import (Config, add_config_flags, config_from, config_from_env,
                    ensure_queue, job_message, job_status, new_job_id,
                    prepare_dirs, valid_job_id, write_atomically)

MAX_UPLOAD_BYTES = 16 << 20

log = logging.getLogger("offload.web")


def create_app(cfg: Config,
               on_ready: Optional[Callable[[], None]] = None) -> FastAPI:
    """The application; on_ready runs once it is connected to the
    broker."""
    app = FastAPI(title="ringmq offload demo")
    app.state.cfg = cfg
    app.state.broker = None

    # FastAPI 0.92 (Debian 12) has no lifespan parameter: startup and
    # shutdown events it is.
    @app.on_event("startup")
    async def connect_broker() -> None:
        prepare_dirs(cfg)
        broker = await ringmq.aio.connect(cfg.broker,
                                          client_name="offload-web")
        await broker.admin(lambda admin: ensure_queue(admin, cfg))
        app.state.broker = broker
        if on_ready is not None:
            on_ready()

    @app.on_event("shutdown")
    async def close_broker() -> None:
        if app.state.broker is not None:
            await app.state.broker.close()

    @app.post("/jobs", status_code=202)
    async def submit(request: Request) -> JSONResponse:
        job_id = request.headers.get("idempotency-key") or new_job_id()
        if not valid_job_id(job_id):
            raise HTTPException(400, "Idempotency-Key: 1 to 64 of "
                                     "A-Z a-z 0-9 - _")
        timing = ServerTiming()
        image = await read_upload(request)
        timing.lap("read")
        # The file first: a worker may take the job the moment it is
        # published. A retry writes the same bytes again, harmlessly.
        await run_in_threadpool(write_atomically, cfg.uploads / job_id, image)
        timing.lap("store")
        try:
            # The job id is the dedup id: a client that retries after a
            # lost answer gets the same job, not a second one.
            published = await app.state.broker.publish(
                cfg.queue, job_message(job_id), dedup_id=job_id)
            timing.lap("publish")
        except ringmq.Error as e:
            log.warning("publish %s: %s", job_id, e)
            # Not confirmed: the client retries with the same id.
            return JSONResponse({"detail": "queue unavailable, retry"},
                                status_code=503,
                                headers={"Retry-After": "1"})
        return JSONResponse(
            {"id": job_id, "status": "pending",
             "duplicate": published.duplicate},
            status_code=202, headers={"Location": f"/jobs/{job_id}",
                                      "Server-Timing": timing.header()})

    @app.get("/jobs/{job_id}")
    async def status(job_id: str) -> dict[str, str]:
        state = job_status(cfg, job_id) if valid_job_id(job_id) else None
        if state is None:
            raise HTTPException(404, "no such job")
        body = {"id": job_id, "status": state}
        if state == "done":
            body["thumbnail"] = f"/jobs/{job_id}/thumbnail"
        return body

    @app.get("/jobs/{job_id}/thumbnail")
    async def thumbnail(job_id: str) -> FileResponse:
        path = cfg.results / f"{job_id}.png"
        if not valid_job_id(job_id) or not path.exists():
            raise HTTPException(404, "no thumbnail (yet)")
        return FileResponse(path, media_type="image/png")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        if app.state.broker is None:
            raise HTTPException(503, "not connected")
        return {"status": "ok"}

    return app


class ServerTiming:
    """Where a request's time went, for the Server-Timing header (shown
    by browsers' developer tools, and by curl -i)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.laps: list[tuple[str, float]] = []

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps.append((name, (now - self.last) * 1000))
        self.last = now

    def header(self) -> str:
        return ", ".join(f"{name};dur={ms:.1f}" for name, ms in self.laps)


async def read_upload(request: Request) -> bytes:
    """The image: the multipart field "image" (or the first file), or
    else the raw body."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, "upload too large")
    if request.headers.get("content-type", "").startswith(
            "multipart/form-data"):
        form = await request.form()
        field = form.get("image")
        if field is None or isinstance(field, str):
            field = next((v for v in form.values()
                          if not isinstance(v, str)), None)
        if field is None:
            raise HTTPException(400, "no file in the form")
        data = await field.read()
    else:
        data = await request.body()
    if not data:
        raise HTTPException(400, "empty upload")
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, "upload too large")
    return data


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that port 0 works and the
    chosen port can be printed for whoever started us."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets
    # only when their proto says TCP, and without it a keep-alive client
    # waits ~40 ms (Nagle and delayed ACK) for every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000,
                        help="0 picks a free port")
    parser.add_argument("--access-log", action="store_true")
    add_config_flags(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s web %(levelname)s %(message)s")
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]

    def ready() -> None:
        # The line whoever started us waits for: connected and serving.
        print(f"listening on http://{host}:{port}", flush=True)

    config = uvicorn.Config(create_app(config_from(args), ready),
                            access_log=args.access_log, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
else:
    # ``uvicorn web:app``: configured by the environment.
    app = create_app(config_from_env())
