"""What the web tier and the workers of the offload demo share: their
configuration, the layout of the shared directory that stands in for
object storage, and the job message between them.

Layout of the data directory (``--data`` or ``OFFLOAD_DATA``)::

    uploads/ID          the uploaded image, as received
    results/ID.png      the thumbnail, once a worker made it
    results/ID.failed   why it could not be made (not an image)
    executions.log      one line per job start and finish, for the tests
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import ringmq

# A job id names files: letters, digits, '-' and '_' only, so an id from a
# client (Idempotency-Key) cannot point outside the data directory.
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Config:
    """Where the broker, the shared files and the queue are."""

    broker: str
    data: Path
    queue: str
    group: str
    partitions: int
    lease: float

    @property
    def uploads(self) -> Path:
        return self.data / "uploads"

    @property
    def results(self) -> Path:
        return self.data / "results"

    @property
    def executions_log(self) -> Path:
        return self.data / "executions.log"


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Flags for :class:`Config`; each defaults to an environment
    variable, so a process manager can configure by either."""
    env = os.environ.get
    parser.add_argument("--broker", default=env("RINGMQ_ADDR",
                                                "127.0.0.1:7420"),
                        help="ringmq broker host:port (RINGMQ_ADDR)")
    parser.add_argument("--data", default=env("OFFLOAD_DATA",
                                              "./offload-data"),
                        help="shared directory for uploads and results "
                             "(OFFLOAD_DATA)")
    parser.add_argument("--queue", default=env("OFFLOAD_QUEUE", "thumbnails"),
                        help="queue name (OFFLOAD_QUEUE)")
    parser.add_argument("--group",
                        default=env("OFFLOAD_GROUP", "thumbnailers"),
                        help="consumer group of the workers (OFFLOAD_GROUP)")
    parser.add_argument("--partitions", type=int,
                        default=int(env("OFFLOAD_PARTITIONS", "4")),
                        help="partitions when creating the queue "
                             "(OFFLOAD_PARTITIONS)")
    parser.add_argument("--lease", type=float,
                        default=float(env("OFFLOAD_LEASE", "30")),
                        help="seconds a job is leased to a worker, when "
                             "creating the queue (OFFLOAD_LEASE)")


def config_from(args: argparse.Namespace) -> Config:
    return Config(broker=args.broker, data=Path(args.data), queue=args.queue,
                  group=args.group, partitions=args.partitions,
                  lease=args.lease)


def config_from_env() -> Config:
    """The configuration from the environment alone (for ``uvicorn
    web:app``, which passes no flags of ours)."""
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    return config_from(parser.parse_args([]))


def prepare_dirs(cfg: Config) -> None:
    cfg.uploads.mkdir(parents=True, exist_ok=True)
    cfg.results.mkdir(parents=True, exist_ok=True)


def ensure_queue(client: ringmq.Client, cfg: Config) -> None:
    """Creates the queue unless it exists. Web processes and workers may
    start in any order, so each of them makes sure it is there."""
    try:
        # After 5 failed deliveries a job goes to the dead-letter queue
        # (thumbnails.dlq) instead of being retried for ever.
        client.create_queue(cfg.queue, partitions=cfg.partitions,
                            lease=cfg.lease, max_deliveries=5)
    except ringmq.QueueExists:
        pass  # made earlier with other settings: use it as it is


def new_job_id() -> str:
    return secrets.token_hex(16)


def valid_job_id(job_id: str) -> bool:
    return JOB_ID.fullmatch(job_id) is not None


def write_atomically(path: Path, data: bytes) -> None:
    """Writes a file that readers see whole or not at all: a temporary
    name in the same directory, then rename. No fsync: the directory
    stands in for object storage, and a killed process (unlike a power
    cut) loses nothing the kernel has."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def job_message(job_id: str) -> bytes:
    """The job the web tier publishes: it names the upload, it does not
    carry it (the broker holds small messages, the store holds blobs)."""
    return json.dumps({"id": job_id, "upload": f"uploads/{job_id}"}).encode()


def job_id_of(payload: bytes) -> Optional[str]:
    """The job id of a job message, or None if it is not one of ours."""
    try:
        job_id = json.loads(payload)["id"]
    except (ValueError, KeyError, TypeError):
        return None
    return job_id if isinstance(job_id, str) and valid_job_id(job_id) else None


def job_status(cfg: Config, job_id: str) -> Optional[str]:
    """done, failed, pending, or None for an unknown job."""
    if (cfg.results / f"{job_id}.png").exists():
        return "done"
    if (cfg.results / f"{job_id}.failed").exists():
        return "failed"
    if (cfg.uploads / job_id).exists():
        return "pending"
    return None
