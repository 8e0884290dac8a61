"""The plain values the client returns: publish confirmations and what the
administration calls report. Frozen dataclasses, built from the broker's
answers; times are seconds (floats), as everywhere in this package."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Optional, Union

__all__ = [
    "Published",
    "Message",
    "QueueSettings",
    "QueueInfo",
    "PartitionInfo",
    "QueueDetail",
    "GroupInfo",
    "StoredMessage",
    "UserInfo",
]

#: What a payload, key or header value may be: bytes, or str (sent as
#: UTF-8).
Data = Union[bytes, bytearray, memoryview, str]


class Published(NamedTuple):
    """A confirmed publish: where the message is stored."""

    #: The partition the message went to.
    partition: int
    #: Its offset within the partition.
    offset: int
    #: True when an earlier publish with the same ``dedup_id`` was
    #: confirmed (within the queue's dedup window): stored once.
    duplicate: bool


@dataclass(frozen=True)
class Message:
    """A message for :meth:`ringmq.Client.publish_many`.

    Attributes:
        payload: the bytes (str is sent as UTF-8).
        key: picks the partition by hash: messages of one key stay in
            order.
        headers: names (str) to values (bytes or str); names starting
            with ``ringmq-`` are the broker's.
        dedup_id: a publish repeating it within the queue's dedup window
            is confirmed as a duplicate instead of stored again.
        delay: seconds before it is ready.
        deliver_at: when it is ready, seconds since the epoch.
    """

    payload: Data
    key: Optional[Data] = None
    headers: Optional[Mapping[str, Data]] = None
    dedup_id: Optional[str] = None
    delay: Optional[float] = None
    deliver_at: Optional[float] = None

    def _item(self) -> tuple[Any, ...]:
        return (self.payload, self.key, self.headers, self.dedup_id,
                self.delay, self.deliver_at)


@dataclass(frozen=True)
class QueueSettings:
    """A queue's policies (seconds for times; 0 means unlimited where the
    broker says so)."""

    lease: Optional[float] = None
    max_lease: Optional[float] = None
    max_deliveries: Optional[int] = None
    max_depth: Optional[int] = None
    max_bytes: Optional[int] = None
    dedup_window: Optional[float] = None
    dead_letter_queue: Optional[str] = None

    @classmethod
    def _of(cls, s: Mapping[str, int], dlq: Optional[str]) -> QueueSettings:
        def secs(name: str) -> Optional[float]:
            v = s.get(name)
            return None if v is None else v / 1000.0

        return cls(lease=secs("lease-ms"), max_lease=secs("max-lease-ms"),
                   max_deliveries=s.get("max-deliveries"),
                   max_depth=s.get("max-depth"),
                   max_bytes=s.get("max-bytes"),
                   dedup_window=secs("dedup-window-ms"),
                   dead_letter_queue=dlq)


@dataclass(frozen=True)
class QueueInfo:
    """A queue with its counters, as :meth:`ringmq.Client.queues` lists
    them."""

    name: str
    partitions: int
    #: Retained messages ready for delivery, summed over groups.
    ready: int
    delayed: int
    #: Messages leased right now.
    in_flight: int
    groups: int
    #: Stored messages and their bytes.
    messages: int
    bytes: int
    #: Totals since the broker started (rates are differences).
    published: int
    delivered: int
    acked: int
    settings: QueueSettings

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> QueueInfo:
        return cls(name=d["name"], partitions=d["partitions"],
                   ready=d["ready"], delayed=d["delayed"],
                   in_flight=d["in_flight"], groups=d["groups"],
                   messages=d["messages"], bytes=d["bytes"],
                   published=d["published"], delivered=d["delivered"],
                   acked=d["acked"],
                   settings=QueueSettings._of(d["settings"],
                                              d["dead_letter_queue"]))


@dataclass(frozen=True)
class PartitionInfo:
    """One partition of a queue."""

    partition: int
    messages: int
    bytes: int
    #: The lowest retained offset, and the offset the next message gets.
    first_offset: int
    next_offset: int
    #: Publish time of the oldest retained message (seconds since the
    #: epoch), None when empty.
    oldest_publish_time: Optional[float]


@dataclass(frozen=True)
class GroupInfo:
    """A consumer group of a queue."""

    queue: str
    name: str
    ready: int
    in_flight: int
    #: Retained messages it has not acked yet.
    lag: int
    #: Subscriptions attached to it.
    consumers: int
    #: Per partition, every offset below it is acked.
    ack_floors: tuple[int, ...]

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> GroupInfo:
        return cls(queue=d["queue"], name=d["name"], ready=d["ready"],
                   in_flight=d["in_flight"], lag=d["lag"],
                   consumers=d["consumers"],
                   ack_floors=tuple(d["ack_floors"]))


@dataclass(frozen=True)
class QueueDetail:
    """One queue described: its counters, partitions and groups."""

    name: str
    partitions: int
    ready: int
    delayed: int
    in_flight: int
    messages: int
    bytes: int
    settings: QueueSettings
    partition_detail: tuple[PartitionInfo, ...]
    group_detail: tuple[GroupInfo, ...]

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> QueueDetail:
        parts = tuple(
            PartitionInfo(
                partition=p["partition"], messages=p["messages"],
                bytes=p["bytes"], first_offset=p["first_offset"],
                next_offset=p["next_offset"],
                oldest_publish_time=(p["oldest_publish_ms"] / 1000.0
                                     if p["oldest_publish_ms"] else None))
            for p in d["partition_detail"])
        return cls(name=d["name"], partitions=d["partitions"],
                   ready=d["ready"], delayed=d["delayed"],
                   in_flight=d["in_flight"], messages=d["messages"],
                   bytes=d["bytes"],
                   settings=QueueSettings._of(d["settings"],
                                              d["dead_letter_queue"]),
                   partition_detail=parts,
                   group_detail=tuple(GroupInfo._of(g)
                                      for g in d["group_detail"]))


@dataclass(frozen=True)
class StoredMessage:
    """A stored message read without leasing it (peek, show, dead
    letters)."""

    partition: int
    offset: int
    #: Seconds since the epoch (broker's clock); None if not known.
    publish_time: Optional[float]
    payload: bytes
    key: Optional[bytes]
    headers: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8."""
        return self.payload.decode()

    @property
    def reason(self) -> Optional[str]:
        """For a dead letter: why it died (``ringmq-dlq-reason``)."""
        v = self.headers.get("ringmq-dlq-reason")
        return None if v is None else v.decode(errors="replace")

    @property
    def last_error(self) -> Optional[str]:
        """For a dead letter: what the nack that killed it said
        (``ringmq-last-error``; a :class:`ringmq.Worker` sends the
        exception's text), if anything."""
        v = self.headers.get("ringmq-last-error")
        return None if v is None else v.decode(errors="replace")

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> StoredMessage:
        return cls(partition=d["partition"], offset=d["offset"],
                   publish_time=(d["publish_ms"] / 1000.0
                                 if d["publish_ms"] else None),
                   payload=d["payload"], key=d["key"], headers=d["headers"])


@dataclass(frozen=True)
class UserInfo:
    """A user of a broker run with authentication on."""

    name: str
    #: When it was made, seconds since the epoch.
    created: float
    #: Connections authenticated as it now.
    connections: int
    #: Queue name pattern to permission bits (PUBLISH | CONSUME | ADMIN).
    permissions: Mapping[str, int]
    #: Quota name to value (0: no limit).
    limits: Mapping[str, int]

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> UserInfo:
        return cls(name=d["name"], created=d["created_ms"] / 1000.0,
                   connections=d["connections"],
                   permissions=d["permissions"], limits=d["limits"])
