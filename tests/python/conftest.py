"""Fixtures of the Python package's tests: a real ringmqd on 127.0.0.1, on
a free port, with a temporary data directory, stopped by its PID."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Iterator, Optional

import pytest

RINGMQD = os.environ.get("RINGMQD", "")


class Broker:
    """A ringmqd process this test started."""

    def __init__(self, *flags: str, data: Optional[str] = None,
                 listen: str = "127.0.0.1:0",
                 listen_flag: str = "--listen") -> None:
        if not RINGMQD:
            pytest.skip("RINGMQD is not set (run through meson test)")
        self.flags = list(flags)
        self.listen_flag = listen_flag
        self.own_data = data is None
        self.data = data or tempfile.mkdtemp(prefix="ringmq-pytest-")
        self.proc: Optional[subprocess.Popen[str]] = None
        self.addr = ""
        self.start(listen)

    def start(self, listen: Optional[str] = None) -> None:
        """Starts the broker (again, on the same address and data)."""
        listen = listen or self.addr
        self.log = open(os.path.join(self.data, "..",
                                     os.path.basename(self.data) + ".log"),
                        "a")
        self.proc = subprocess.Popen(
            [RINGMQD, self.listen_flag, listen, "--data", self.data,
             "--http", "off", *self.flags],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 10
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            m = re.search(r"listening on (\S+)", line)
            if m:
                self.addr = m.group(1)
                return
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"ringmqd did not start: {line!r}")

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])

    def kill(self) -> None:
        """kill -9: no goodbye, no final commit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        rc = self.proc.returncode
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()
        return rc

    def close(self) -> None:
        self.stop()
        if self.own_data:
            shutil.rmtree(self.data, ignore_errors=True)
            try:
                os.unlink(self.data.rstrip("/") + ".log")
            except OSError:
                pass


@pytest.fixture
def broker() -> Iterator[Broker]:
    b = Broker("--sync", "never")
    yield b
    b.close()


@pytest.fixture
def durable_broker() -> Iterator[Broker]:
    b = Broker("--sync", "always")
    yield b
    b.close()


_seq = [0]


@pytest.fixture
def qname() -> str:
    """A queue name no other test of this process uses."""
    _seq[0] += 1
    return f"q{os.getpid()}x{_seq[0]}"
