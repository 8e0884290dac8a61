"""The administration calls of :class:`ringmq.Client`: queues, groups,
stored messages, dead letters, statistics, backups and users. One
request, one answer each; they wait for the broker (the GIL is dropped
while they do)."""

from __future__ import annotations

from typing import Any, Iterable, Optional, Union

from . import _ringmq
from .types import (GroupInfo, QueueDetail, QueueInfo, StoredMessage,
                    UserInfo)

__all__ = ["Admin", "PUBLISH", "CONSUME", "ADMIN", "ALL"]

#: Permission bits for :meth:`Admin.grant`.
PUBLISH = 1
CONSUME = 2
ADMIN = 4
ALL = 7

_PERMS = {"publish": PUBLISH, "consume": CONSUME, "admin": ADMIN, "all": ALL}


def _setting(value: object) -> str:
    if isinstance(value, bool):
        raise TypeError("a number is needed, not a bool")
    return str(value)


def _queue_settings(partitions: Optional[int], lease: Optional[float],
                    max_lease: Optional[float],
                    max_deliveries: Optional[int],
                    dead_letter_queue: Optional[str],
                    max_depth: Optional[int], max_bytes: Optional[int],
                    dedup_window: Optional[float]) -> dict[str, str]:
    s: dict[str, str] = {}

    def ms(name: str, seconds: Optional[float]) -> None:
        if seconds is not None:
            if seconds < 0:
                raise ValueError(f"{name} must not be negative")
            s[name] = str(round(seconds * 1000))

    if partitions is not None:
        s["partitions"] = _setting(partitions)
    ms("lease-ms", lease)
    ms("max-lease-ms", max_lease)
    ms("dedup-window-ms", dedup_window)
    if max_deliveries is not None:
        s["max-deliveries"] = _setting(max_deliveries)
    if dead_letter_queue is not None:
        s["dead-letter"] = dead_letter_queue
    if max_depth is not None:
        s["max-depth"] = _setting(max_depth)
    if max_bytes is not None:
        s["max-bytes"] = _setting(max_bytes)
    return s


def _perm_bits(perms: Union[int, str, Iterable[str]]) -> int:
    if isinstance(perms, int):
        return perms
    names = perms.replace(",", " ").split() if isinstance(perms, str) \
        else list(perms)
    bits = 0
    for n in names:
        try:
            bits |= _PERMS[n.lower()]
        except KeyError:
            raise ValueError(f"unknown permission {n!r}: publish, consume, "
                             "admin or all") from None
    return bits


class Admin:
    """Administration calls, shared by the synchronous client."""

    _core: _ringmq.Client

    # ------------------------------------------------------------ queues

    def create_queue(self, name: str, *, partitions: Optional[int] = None,
                     lease: Optional[float] = None,
                     max_lease: Optional[float] = None,
                     max_deliveries: Optional[int] = None,
                     dead_letter_queue: Optional[str] = None,
                     max_depth: Optional[int] = None,
                     max_bytes: Optional[int] = None,
                     dedup_window: Optional[float] = None) -> None:
        """Creates a queue; succeeds when it exists with the same given
        settings (:class:`~ringmq.errors.QueueExists` with others).

        Args:
            name: ``[A-Za-z0-9][A-Za-z0-9._-]{0,195}``.
            partitions: 1 to 1024 (broker default 1), fixed for good.
            lease: seconds a delivery is leased (default 30).
            max_lease: the longest a lease may be extended to (12 h).
            max_deliveries: failed leases before a message is
                dead-lettered (default 5; 0: never).
            dead_letter_queue: where dead letters go (``<name>.dlq``).
            max_depth, max_bytes: retained messages and bytes at most
                (0: unlimited); a publish over them gets QueueFull.
            dedup_window: seconds a dedup id is remembered (600).
        """
        _ringmq.queue_create(self._core, name, _queue_settings(
            partitions, lease, max_lease, max_deliveries, dead_letter_queue,
            max_depth, max_bytes, dedup_window))

    def update_queue(self, name: str, *, lease: Optional[float] = None,
                     max_lease: Optional[float] = None,
                     max_deliveries: Optional[int] = None,
                     dead_letter_queue: Optional[str] = None,
                     max_depth: Optional[int] = None,
                     max_bytes: Optional[int] = None,
                     dedup_window: Optional[float] = None) -> None:
        """Changes the given policies of a queue; the others stay. A new
        lease time applies to deliveries made after the change."""
        _ringmq.queue_set(self._core, name, _queue_settings(
            None, lease, max_lease, max_deliveries, dead_letter_queue,
            max_depth, max_bytes, dedup_window))

    def delete_queue(self, name: str) -> None:
        """Deletes a queue and its messages."""
        _ringmq.queue_delete(self._core, name)

    def purge(self, queue: str) -> int:
        """Deletes every ready and delayed message of a queue (leased ones
        stay leased); returns how many."""
        return _ringmq.queue_purge(self._core, queue)

    def queues(self) -> list[QueueInfo]:
        """Every queue this user may see, with its counters."""
        return [QueueInfo._of(d) for d in _ringmq.queue_list(self._core)]

    def queue(self, name: str) -> QueueDetail:
        """One queue: counters, partitions, groups and policies."""
        return QueueDetail._of(_ringmq.queue_describe(self._core, name))

    # ------------------------------------------------------------ groups

    def create_group(self, queue: str, group: str,
                     start: str = "earliest") -> None:
        """Creates a consumer group starting at the earliest retained
        message or the next one published (``"latest"``); an existing
        group is left as it is."""
        _ringmq.group_create(self._core, queue, group, start)

    def reset_group(self, queue: str, group: str,
                    start: str = "earliest") -> None:
        """Moves a group's position to the earliest retained message or
        past the last one; its leases end, not counted as failures."""
        _ringmq.group_reset(self._core, queue, group, start)

    def delete_group(self, queue: str, group: str) -> None:
        """Deletes a consumer group; its subscriptions end."""
        _ringmq.group_delete(self._core, queue, group)

    def groups(self, queue: Optional[str] = None) -> list[GroupInfo]:
        """The consumer groups of a queue (None: of every queue)."""
        return [GroupInfo._of(d)
                for d in _ringmq.group_list(self._core, queue, None)]

    def group(self, queue: str, group: str) -> GroupInfo:
        """One consumer group with its lag and ack floors."""
        return GroupInfo._of(_ringmq.group_list(self._core, queue, group)[0])

    # --------------------------------------------------- stored messages

    def peek(self, queue: str, partition: Optional[int] = None,
             from_offset: int = 0, count: int = 10) -> list[StoredMessage]:
        """Reads stored messages without leasing them, in partition then
        offset order (the broker may answer fewer than count)."""
        return [StoredMessage._of(d) for d in _ringmq.peek(
            self._core, queue, -1 if partition is None else partition,
            from_offset, count)]

    def message(self, queue: str, partition: int,
                offset: int) -> StoredMessage:
        """One stored message (MessageNotFound if none)."""
        return StoredMessage._of(
            _ringmq.message_show(self._core, queue, partition, offset)[0])

    def cancel(self, queue: str, partition: int, offset: int) -> None:
        """Cancels a delayed message that is not due yet: it is deleted and
        never delivered."""
        _ringmq.message_cancel(self._core, queue, partition, offset)

    def dead_letters(self, queue: str,
                     limit: Optional[int] = None) -> list[StoredMessage]:
        """The dead letters of a source queue, oldest first, all of them
        or the first ``limit``; each carries the ``ringmq-*`` headers
        saying where it came from and why (:attr:`StoredMessage.reason`).
        """
        out: list[StoredMessage] = []
        part, off = 0, 0
        while limit is None or len(out) < limit:
            want = 0 if limit is None else min(limit - len(out), 1000)
            page = _ringmq.dead_letters(self._core, queue, want, part, off)
            if not page:
                break
            out.extend(StoredMessage._of(d) for d in page)
            part, off = page[-1]["partition"], page[-1]["offset"] + 1
        return out

    def redrive(self, queue: str, group: Optional[str] = None,
                count: int = 0) -> int:
        """Publishes dead letters of a source queue again on it (those of
        one group, or all; at most count, 0: all); returns how many."""
        return _ringmq.redrive(self._core, queue, group, count)

    # ------------------------------------------------------------ broker

    def stats(self) -> dict[str, float]:
        """The broker's counters by name (connections, rates, storage)."""
        return _ringmq.stats(self._core)

    def metadata(self) -> dict[str, Any]:
        """Where each queue's partitions are served, as ``ringmq cluster
        status --json`` prints it: ``cluster`` and ``controller`` (None
        outside a cluster), ``brokers`` (``id``, ``address``) and
        ``queues`` (``name``, ``partitions``: ``partition``, ``owner``,
        ``epoch``). Outside a cluster the broker names itself for every
        partition, at epoch 0."""
        return _ringmq.metadata(self._core)

    def backup(self, directory: str) -> int:
        """Writes a consistent copy of the broker's data into directory on
        the broker's host; returns the copy's size in bytes."""
        return _ringmq.backup(self._core, directory)

    # ------------------------------------------------------------- users

    def add_user(self, name: str, password: str) -> None:
        """Adds a user with no permission yet (admin on ``*`` needed)."""
        _ringmq.user_add(self._core, name, password)

    def set_password(self, name: str, password: str) -> None:
        """Changes a user's password (a user may change its own)."""
        _ringmq.user_passwd(self._core, name, password)

    def delete_user(self, name: str) -> None:
        """Deletes a user; its connections are closed."""
        _ringmq.user_delete(self._core, name)

    def set_user_limit(self, name: str, limit: str, value: int) -> None:
        """Sets a quota: ``max-connections``, ``publish-rate``,
        ``publish-bytes-rate`` or ``max-leases`` (0: no limit)."""
        _ringmq.user_set_limit(self._core, name, limit, value)

    def users(self) -> list[UserInfo]:
        """The users with their permissions and quotas."""
        return [UserInfo._of(d) for d in _ringmq.user_list(self._core)]

    def grant(self, user: str, pattern: str,
              perms: Union[int, str, Iterable[str]]) -> None:
        """Grants perms (``"publish,consume"``, a list of names, or
        PUBLISH | CONSUME | ADMIN bits) on the queues matching pattern
        (``*`` matches any run of characters), replacing what the user had
        on exactly that pattern."""
        _ringmq.acl_set(self._core, user, pattern, _perm_bits(perms))

    def revoke(self, user: str, pattern: str) -> None:
        """Takes away what user had on exactly pattern, at once."""
        _ringmq.acl_delete(self._core, user, pattern)
