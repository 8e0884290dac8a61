#!/usr/bin/python3
"""A worker of the offload demo: takes thumbnail jobs from ringmq, makes
each thumbnail with PIL and stores it where the web tier finds it.

A job is acked when the handler returns and retried with back-off when it
raises. If this process dies mid-job (kill -9, a crash, a lost machine)
the job was never acked: the broker delivers it again once the lease
runs out or the connection is gone. SIGTERM or Ctrl-C stops it gracefully:
the running job finishes, jobs prefetched but not started go back.

Every start and finish is appended to DATA/executions.log (``start ID PID
DELIVERY`` and ``done ID PID DELIVERY MS``), so that tests can count how
many times each job ran.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any, Optional, Sequence

from PIL import UnidentifiedImageError

import ringmq
from common import (Config, add_config_flags, config_from, ensure_queue,
                    job_id_of, prepare_dirs, write_atomically)
from images import make_thumbnail

log = logging.getLogger("offload.worker")


class ExecutionLog:
    """Appends one short line per event with a single write(2) on an
    O_APPEND file: lines of concurrent workers never interleave."""

    def __init__(self, path: os.PathLike[str]) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, *fields: object) -> None:
        os.write(self.fd, (" ".join(map(str, fields)) + "\n").encode())

    def close(self) -> None:
        os.close(self.fd)


class ThumbnailJobs:
    """The handler: one call per delivered job."""

    def __init__(self, cfg: Config, executions: ExecutionLog,
                 extra_seconds: float = 0.0) -> None:
        self.cfg = cfg
        self.executions = executions
        self.extra_seconds = extra_seconds

    def __call__(self, job: Any) -> None:
        job_id = job_id_of(job.payload)
        if job_id is None:
            # Not ours, and it never will be: ack it rather than retry.
            log.error("job %d/%d is not a thumbnail job: %r", job.partition,
                      job.offset, job.payload[:80])
            return
        started = time.monotonic()
        self.executions.write("start", job_id, os.getpid(),
                              job.delivery_count)
        self.make(job_id)
        if self.extra_seconds:
            time.sleep(self.extra_seconds)  # a slower job, for tests
        ms = round((time.monotonic() - started) * 1000, 1)
        self.executions.write("done", job_id, os.getpid(),
                              job.delivery_count, ms)

    def make(self, job_id: str) -> None:
        # A missing upload raises: nacked, retried with back-off, then
        # dead-lettered; the store may just be slow to show it.
        image = (self.cfg.uploads / job_id).read_bytes()
        try:
            thumb = make_thumbnail(image)
        except UnidentifiedImageError as e:
            # Retrying cannot make it an image: record why, and ack.
            write_atomically(self.cfg.results / f"{job_id}.failed",
                             f"{e}\n".encode())
            return
        write_atomically(self.cfg.results / f"{job_id}.png", thumb)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=1,
                        help="jobs at once in this process (threads); "
                             "PIL holds the GIL for part of the work, so "
                             "scale with processes first")
    parser.add_argument("--extra-seconds", type=float, default=0.0,
                        help="sleep this long in every job after the "
                             "thumbnail (to simulate slower jobs in tests)")
    add_config_flags(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s worker %(levelname)s %(message)s")
    cfg = config_from(args)
    prepare_dirs(cfg)
    executions = ExecutionLog(cfg.executions_log)
    with ringmq.Client(cfg.broker,
                       client_name=f"offload-worker-{os.getpid()}") as client:
        ensure_queue(client, cfg)
        worker = ringmq.Worker(
            client, cfg.queue, cfg.group,
            ThumbnailJobs(cfg, executions, args.extra_seconds),
            concurrency=args.concurrency,
            backoff=ringmq.Backoff(initial=0.5, maximum=30))
        print(f"worker {os.getpid()} consuming {cfg.queue}/{cfg.group}",
              flush=True)
        worker.run()  # until SIGTERM or SIGINT
        log.info("stopped: %d jobs done, %d failed", worker.succeeded,
                 worker.failed)
    executions.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
