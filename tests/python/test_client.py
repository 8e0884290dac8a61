"""The synchronous client against a real broker: every call, its errors,
and sharing one client among threads."""

from __future__ import annotations

import gc
import threading
import time
from concurrent.futures import Future

import pytest

import ringmq
from ringmq import errors


def test_publish_returns_where_it_is_stored_and_fields_round_trip(broker,
                                                                  qname):
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname, partitions=3)
        before = time.time()
        p = c.publish(qname, b"payload", key="user-7",
                      headers={"trace": "abc", "bin": b"\x00\xff"},
                      dedup_id="job-1")
        assert isinstance(p, ringmq.Published)
        assert 0 <= p.partition < 3 and p.offset == 0 and not p.duplicate
        again = c.publish(qname, b"payload", key="user-7", dedup_id="job-1")
        assert again == (p.partition, p.offset, True)
        text = c.publish(qname, "héllo", key="user-7")
        assert text.partition == p.partition  # same key, same partition
        with c.consume(qname, "g", timeout=2) as cons:
            j = next(cons)
            assert j.payload == b"payload" and j.key == b"user-7"
            assert j.headers == {"trace": b"abc", "bin": b"\x00\xff"}
            assert (j.partition, j.offset) == (p.partition, p.offset)
            assert j.delivery_count == 1
            assert j.publish_time is not None
            assert before - 5 < j.publish_time < time.time() + 5
            assert 25 < j.lease_time <= 30
            assert j.subscription == cons.subscription
            j.ack()
            j2 = next(cons)
            assert j2.text == "héllo" and j2.payload == "héllo".encode()
            j2.ack()


def test_delay_and_deliver_at_hold_a_message_back(broker, qname):
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname)
        c.publish(qname, b"later", delay=0.6)
        c.publish(qname, b"at", deliver_at=time.time() + 0.6)
        gone = c.publish(qname, b"cancelled", delay=60)
        c.cancel(qname, gone.partition, gone.offset)
        with c.consume(qname, "g") as cons:
            t0 = time.monotonic()
            assert cons.get(timeout=0.3) is None
            got = sorted(j.payload for j in cons.take(2, timeout=5))
            while len(got) < 2:
                got += [j.payload for j in cons.take(2, timeout=5)]
            assert sorted(got) == [b"at", b"later"]
            assert time.monotonic() - t0 >= 0.4
            assert cons.get(timeout=0.3) is None  # the cancelled one


def test_publish_many_keeps_order_and_reports_each(broker, qname):
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname)
        msgs = [b"m%d" % i for i in range(5000)]
        res = c.publish_many(qname, msgs)
        assert [r.offset for r in res] == list(range(5000))
        res = c.publish_many(qname, [ringmq.Message(b"x", dedup_id="d"),
                                     ringmq.Message(b"x", dedup_id="d")])
        assert res[1].duplicate and res[0].offset == res[1].offset
        got = []
        with c.consume(qname, "g", credit=1000, timeout=1) as cons:
            for j in cons:
                got.append(j.payload)
                c.ack_async([j])
        assert got[:5000] == msgs


def test_publish_many_reports_failures_in_place(broker, qname):
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname, max_depth=3)
        res = c.publish_many(qname, [b"1", b"2", b"3", b"4", b"5"],
                             raise_on_error=False)
        assert all(isinstance(r, ringmq.Published) for r in res[:3])
        assert all(isinstance(r, ringmq.QueueFull) for r in res[3:])
        with pytest.raises(ringmq.QueueFull) as e:
            c.publish_many(qname, [b"6"])
        assert e.value.retryable and e.value.name == "QUEUE_FULL"


def test_publish_async_futures_and_flush(broker, qname):
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname, partitions=2)
        futs = [c.publish_async(qname, b"a%d" % i, key=str(i % 7))
                for i in range(20000)]
        c.flush(timeout=30)
        assert all(f.done() for f in futs)
        offsets = {(f.result().partition, f.result().offset) for f in futs}
        assert len(offsets) == 20000
        assert c.info()["outstanding"] == 0
        # A refusal resolves the future with the error.
        c.create_queue(qname + "f", max_depth=1)
        ok = c.publish_async(qname + "f", b"1")
        full = c.publish_async(qname + "f", b"2")
        assert isinstance(ok.result(10), ringmq.Published)
        with pytest.raises(ringmq.QueueFull):
            full.result(10)


def test_futures_complete_without_flush(broker, qname):
    with ringmq.Client(broker.addr, linger=0.05) as c:
        c.create_queue(qname)
        f = c.publish_async(qname, b"x")
        # The client's own thread serves the linger and the answer.
        assert f.result(timeout=5).offset == 0


def test_an_exception_in_a_callback_does_not_kill_the_client(broker, qname):
    seen = []
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname)
        for i in range(100):
            f = c.publish_async(qname, b"x")

            def bad(fut: "Future[ringmq.Published]") -> None:
                seen.append(fut.result().offset)
                raise RuntimeError("a buggy done callback")

            f.add_done_callback(bad)
        c.flush(timeout=10)
        assert len(seen) == 100
        assert c.publish(qname, b"still fine").offset == 100
        c.ping()


def test_unknown_queue_and_bad_arguments_raise_clear_errors(broker, qname):
    with ringmq.Client(broker.addr) as c:
        with pytest.raises(ringmq.QueueNotFound) as e:
            c.publish("no-such-queue", b"x")
        assert e.value.code == 4 and isinstance(e.value, ringmq.NotFound)
        with pytest.raises(ringmq.QueueNotFound):
            c.publish_async("no-such-queue", b"x")
        with pytest.raises(ringmq.QueueNotFound):
            c.consume("no-such-queue", "g")
        with pytest.raises(ringmq.InvalidArgument):
            c.create_queue("bad name!")
        c.create_queue(qname, partitions=2)
        with pytest.raises(ringmq.QueueExists):
            c.create_queue(qname, partitions=3)
        c.create_queue(qname, partitions=2)  # same settings: fine
        with pytest.raises(ValueError):
            c.publish(qname, b"x", headers={"ringmq-x": "reserved"})
        with pytest.raises(TypeError):
            c.publish(qname, 42)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            c.publish(qname, b"x", delay=-1)
        big = b"x" * (c.info()["max_message_bytes"] + 1)
        with pytest.raises(ringmq.MessageTooLarge):
            c.publish(qname, big)
        with pytest.raises(ringmq.UsageError):
            ringmq.Client(broker.addr, options={"no-such-option": "1"})
        assert c.publish(qname, b"the connection is fine").offset >= 0


def test_unreachable_broker(broker):
    port = broker.port
    broker.stop()
    with pytest.raises(ringmq.Unreachable) as e:
        ringmq.Client(f"127.0.0.1:{port}", connect_timeout=1)
    assert isinstance(e.value, ConnectionError) and e.value.retryable


def test_closed_client_raises_closed(broker, qname):
    c = ringmq.Client(broker.addr)
    c.create_queue(qname)
    c.close()
    c.close()  # idempotent
    with pytest.raises(ringmq.Closed):
        c.publish(qname, b"x")
    with pytest.raises(ringmq.Closed):
        c.queues()


def test_nack_release_touch_and_lease_errors(broker, qname):
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname, lease=1.0)
        c.publish(qname, b"j")
        with c.consume(qname, "g", credit=1) as cons:
            j = cons.get(timeout=5)
            assert j is not None and j.delivery_count == 1
            j.release()  # not a failure
            j = cons.get(timeout=5)
            assert j is not None and j.delivery_count == 1
            with pytest.raises(ringmq.NotLeased):
                c.ack([ringmq_job_with_bad_lease(j)])
            j.nack(delay=0.3)
            assert cons.get(timeout=0.1) is None
            j = cons.get(timeout=5)
            assert j is not None and j.delivery_count == 2
            left = j.touch(lease=5.0)
            assert 4.0 < left <= 5.0
            time.sleep(1.5)  # past the queue's 1 s lease: touched, alive
            j.ack()
            j.ack()  # acking twice is OK, as the protocol says
        c.publish(qname, b"k")
        with c.consume(qname, "g2", credit=1) as cons:
            j = cons.get(timeout=5)
            assert j is not None
            time.sleep(1.5)
            with pytest.raises((ringmq.LeaseExpired, ringmq.NotLeased)):
                j.ack()


class ringmq_job_with_bad_lease:  # noqa: N801 - a stand-in with a lease id
    def __init__(self, job: ringmq.Job) -> None:
        self.lease_id = job.lease_id + 1000


def test_admin_calls_return_dataclasses(broker, qname):
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname, partitions=2, lease=10, max_deliveries=1,
                       max_depth=1000, dedup_window=60)
        c.update_queue(qname, lease=20)
        q = c.queue(qname)
        assert q.name == qname and q.partitions == 2
        assert q.settings.lease == 20.0 and q.settings.max_deliveries == 1
        assert q.settings.dead_letter_queue == qname + ".dlq"
        assert [p.partition for p in q.partition_detail] == [0, 1]
        c.publish_many(qname, [b"a", b"b", b"c"])
        assert any(i.name == qname and i.messages == 3 for i in c.queues())
        c.create_group(qname, "g")
        g = c.group(qname, "g")
        assert g.lag == 3 and g.consumers == 0 and len(g.ack_floors) == 2
        assert [x.name for x in c.groups(qname)] == ["g"]
        peeked = c.peek(qname, count=10)
        assert sorted(m.payload for m in peeked) == [b"a", b"b", b"c"]
        one = c.message(qname, peeked[0].partition, peeked[0].offset)
        assert one.payload == peeked[0].payload
        # One failed delivery is the maximum: a nack dead-letters it.
        with c.consume(qname, "g", credit=10) as cons:
            jobs = cons.take(3, timeout=5)
            while len(jobs) < 3:
                jobs += cons.take(3, timeout=5)
            c.nack(jobs)
        dead: list[ringmq.StoredMessage] = []
        deadline = time.monotonic() + 5
        while len(dead) < 3 and time.monotonic() < deadline:
            dead = c.dead_letters(qname)
        assert sorted(d.payload for d in dead) == [b"a", b"b", b"c"]
        assert all(d.reason == "max_deliveries" for d in dead)
        assert c.redrive(qname, "g") == 3
        assert c.group(qname, "g").lag >= 3
        c.reset_group(qname, "g", start="latest")
        c.publish(qname, b"d", delay=3600)
        assert c.purge(qname) >= 1
        stats = c.stats()
        assert stats["connections"] >= 1
        md = c.metadata()
        assert md["cluster"] is None and md["controller"] is None
        assert md["brokers"] == [{"id": "", "address": broker.addr}]
        mine = [q for q in md["queues"] if q["name"] == qname]
        assert mine == [{"name": qname, "partitions": [
            {"partition": p, "owner": broker.addr, "epoch": 0}
            for p in (0, 1)]}]
        c.delete_group(qname, "g")
        with pytest.raises(ringmq.GroupNotFound):
            c.group(qname, "g")
        c.delete_queue(qname)
        with pytest.raises(ringmq.QueueNotFound):
            c.queue(qname)


def test_threads_share_one_client_exactly_once(broker, qname):
    threads, per = 8, 2000
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname, partitions=4)
        errs: list[BaseException] = []

        def producer(t: int) -> None:
            try:
                for i in range(per):
                    did = f"{t}-{i}"
                    if i % 2:
                        c.publish(qname, did, dedup_id=did)
                    else:
                        c.publish_async(qname, did, dedup_id=did)
                    if i % 500 == 0:  # a repeat is stored once
                        c.publish(qname, did, dedup_id=did)
            except BaseException as e:  # noqa: BLE001 - reported below
                errs.append(e)

        ts = [threading.Thread(target=producer, args=(t,))
              for t in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        c.flush(timeout=30)
        assert not errs
        seen: dict[str, int] = {}
        with c.consume(qname, "g", credit=1000, timeout=1) as cons:
            for j in cons:
                seen[j.text] = seen.get(j.text, 0) + 1
                c.ack_async([j])
        assert len(seen) == threads * per
        assert set(seen.values()) == {1}


def test_consumers_on_one_client_get_only_their_own_jobs(broker, qname):
    with ringmq.Client(broker.addr) as c:
        for q in ("a", "b"):
            c.create_queue(qname + q)
            c.publish_many(qname + q, [f"{q}{i}" for i in range(300)])
        got: dict[str, list[str]] = {"a": [], "b": []}

        def consume(q: str) -> None:
            with c.consume(qname + q, "g", credit=50, timeout=1) as cons:
                for j in cons:
                    got[q].append(j.text)
                    j.ack()

        ts = [threading.Thread(target=consume, args=(q,)) for q in "ab"]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for q in "ab":
            assert sorted(got[q]) == sorted(f"{q}{i}" for i in range(300))


def test_deleting_a_group_ends_its_consumer(broker, qname):
    with ringmq.Client(broker.addr) as c, ringmq.Client(broker.addr) as adm:
        c.create_queue(qname)
        cons = c.consume(qname, "g")
        adm.delete_group(qname, "g")
        with pytest.raises(ringmq.GroupNotFound):
            cons.get(timeout=5)
            cons.get(timeout=5)
        cons.close()


def test_no_leak_over_100000_publishes_and_deliveries(broker, qname):
    def rss_kib() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    payload = b"x" * 256
    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname, partitions=2)

        def round_trip(n: int, group: str) -> None:
            for i in range(0, n, 1000):
                c.publish_many(qname, [payload] * 500)
                for _ in range(500):
                    c.publish_async(qname, payload, key=b"k",
                                    headers={"h": b"v"})
            c.flush(timeout=60)
            got = 0
            with c.consume(qname, group, credit=512, timeout=2) as cons:
                while got < n:
                    jobs = cons.take(256, timeout=2)
                    assert jobs, f"only {got} of {n} delivered"
                    for j in jobs:
                        assert j.payload == payload
                        j.headers
                    got += len(jobs)
                    c.ack_async(jobs)
            c.flush(timeout=60)

        round_trip(20000, "warm")
        gc.collect()
        before = rss_kib()
        round_trip(100000, "g1")
        gc.collect()
        after = rss_kib()
        # A leak of one 256-byte payload (or one job object) per message
        # would be 25 MB (or 6 MB) here.
        assert after - before < 4096, f"RSS grew {after - before} KiB"


def test_errors_module_maps_every_code():
    for code, cls in [(6, errors.QueueFull), (8, errors.LeaseExpired),
                      (22, errors.NotOwner),
                      (18, errors.Unauthenticated),
                      (17, errors.PermissionDenied),
                      (19, errors.QuotaExceeded), (101, errors.Timeout),
                      (104, errors.ConnectionLost), (999, errors.Error)]:
        e = errors.from_code(code)
        assert type(e) is cls and e.code == code and e.message


def test_a_dropped_client_is_collected_and_its_thread_ends(broker, qname):
    before = threading.active_count()
    for _ in range(10):
        c = ringmq.Client(broker.addr)
        c.create_queue(qname)
        c.publish_async(qname, b"x").result(5)
        del c
    gc.collect()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before
    with ringmq.Client(broker.addr) as c:
        assert c.queue(qname).messages == 10


def test_credentials_permissions_and_quotas_map_to_exceptions(tmp_path,
                                                              qname):
    from conftest import Broker

    boot = tmp_path / "boot"
    boot.write_text("admin:admin-secret\n")
    b = Broker("--sync", "never", "--auth", "on", "--auth-bootstrap-file",
               str(boot))
    try:
        pw = tmp_path / "web.pw"
        pw.write_text("web-secret\n")
        with ringmq.Client(b.addr, user="admin",
                           password="admin-secret") as adm:
            adm.create_queue(qname)
            adm.add_user("web", "web-secret")
            adm.grant("web", qname, "publish")
            assert [u.name for u in adm.users()] == ["admin", "web"]
            assert adm.users()[1].permissions == {qname: ringmq.PUBLISH}
        with pytest.raises(ringmq.Unauthenticated):
            ringmq.Client(b.addr, user="web", password="wrong")
        with pytest.raises(ringmq.Unauthenticated):
            ringmq.Client(b.addr)  # no user, auth on
        with ringmq.Client(b.addr, user="web",
                           password_file=str(pw)) as web:
            assert web.publish(qname, b"ok").offset == 0
            with pytest.raises(ringmq.PermissionDenied):
                web.consume(qname, "g")
            with pytest.raises(ringmq.PermissionDenied):
                web.delete_queue(qname)
    finally:
        b.close()


def test_tls_options_reach_the_library(tmp_path, qname):
    """A broker that speaks only TLS: the CA and the server name given to
    the package verify it; without the CA the handshake is refused."""
    import shutil
    import subprocess

    from conftest import Broker

    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True,
                       capture_output=True, timeout=60)

    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=test-ca")
    openssl("req", "-new", *key, "-keyout", "broker.key", "-out",
            "broker.csr", "-subj", "/CN=localhost")
    (tmp_path / "broker.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-days", "2", "-extfile",
            "broker.ext", "-out", "broker.pem")
    b = Broker("--sync", "never", "--listen", "off", "--tls-cert",
               str(tmp_path / "broker.pem"), "--tls-key",
               str(tmp_path / "broker.key"), listen_flag="--tls-listen")
    try:
        with ringmq.Client(b.addr, tls=True, tls_ca=str(tmp_path / "ca.pem"),
                           tls_server_name="localhost") as c:
            c.create_queue(qname)
            assert c.publish(qname, b"over tls").offset == 0
        with pytest.raises(ringmq.Unreachable) as e:
            ringmq.Client(b.addr, tls=True, connect_timeout=2)
        assert "certificate" in e.value.message
        with pytest.raises(ValueError):
            ringmq.Client(b.addr, tls_ca=str(tmp_path / "ca.pem"))
    finally:
        b.close()


def test_a_client_made_before_a_fork_is_refused_in_the_child(broker, qname):
    import os

    with ringmq.Client(broker.addr) as c:
        c.create_queue(qname)
        pid = os.fork()
        if pid == 0:  # the child: refused, and closing leaves it alone
            code = 1
            try:
                c.publish(qname, b"from the child")
            except ringmq.UsageError as e:
                code = 0 if "fork" in e.message else 2
            c.close()
            del c
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        # The parent's connection is untouched.
        assert c.publish(qname, b"from the parent").offset == 0
        c.ping()


def test_a_callback_may_close_the_client(broker, qname):
    """A future's done callback runs where the client was served; closing
    the client from it must not wait for that very call."""
    c = ringmq.Client(broker.addr)
    c.create_queue(qname)
    closed = threading.Event()

    def close_it(f: "Future[ringmq.Published]") -> None:
        c.close()
        closed.set()

    c.publish_async(qname, b"x").add_done_callback(close_it)
    assert closed.wait(10), "close() from a callback hung"
    with pytest.raises(ringmq.Closed):
        c.publish(qname, b"y")
