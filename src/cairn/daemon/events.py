"""Deciding what to do about file events, kept pure (time and the disk are passed in) so it is
unit-tested: the debounced queue the watcher fills, the order a batch is applied in, and what
a reconciliation scan has to read, drop or re-point.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Action = Literal["changed", "settle", "deleted", "dir_deleted"]


@dataclass
class Pending:
    """What is known about one path since it was last handled."""

    action: Action
    due: float                            # monotonic time it becomes ready
    first: float                          # first event of this burst (bounds the wait)
    moved_from: str | None = None         # it arrived by a rename from this path
    stamp: tuple[float, int] | None = None  # (mtime, size) a settling file had last time


class EventQueue:
    """Debounced file events, keyed by path; thread-safe (the watcher's threads add, the
    daemon's main loop takes).

    - `closed` (a write finished) and a rename's destination are ready after `debounce`
      seconds of quiet, and never wait longer than `max_wait` in a burst of writes.
    - `created`/`modified` alone do not mean the write is done: the path *settles* and is
      read once its size and mtime stop changing (files moved in from outside the watched
      folders, and platforms without close events, arrive this way).
    - a delete waits too, so an editor that deletes and rewrites a file makes an edit.
    """

    def __init__(self, debounce: float = 0.5, max_wait: float = 5.0,
                 close_events: bool = True) -> None:
        self.debounce = max(0.0, debounce)
        self.max_wait = max(max_wait, self.debounce)
        self.close_events = close_events
        self._items: dict[str, Pending] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _put(self, path: str, action: Action, now: float, *, moved_from: str | None = None,
             keep_first: bool = True) -> None:
        old = self._items.get(path)
        first = old.first if (old and keep_first) else now
        due = min(now + self.debounce, first + self.max_wait)
        self._items[path] = Pending(action, due, first, moved_from)

    def closed(self, path: str, now: float) -> None:
        with self._lock:
            old = self._items.get(path)
            self._put(path, "changed", now, moved_from=old.moved_from if old else None)

    def created(self, path: str, now: float) -> None:
        with self._lock:
            old = self._items.get(path)
            if old and old.action == "changed":
                old.due = min(now + self.debounce, old.first + self.max_wait)
                return
            self._put(path, "settle", now)

    def modified(self, path: str, now: float) -> None:
        with self._lock:
            old = self._items.get(path)
            if old is not None and old.action in ("changed", "settle"):
                # A write in progress: wait for it to end (bounded for files that never rest).
                old.due = min(now + self.debounce, old.first + self.max_wait)
                old.stamp = None
            elif old is None and not self.close_events:
                self._put(path, "settle", now)

    def deleted(self, path: str, now: float) -> None:
        with self._lock:
            self._put(path, "deleted", now, keep_first=False)

    def dir_deleted(self, path: str, now: float) -> None:
        with self._lock:
            self._put(path, "dir_deleted", now, keep_first=False)

    def moved(self, src: str, dest: str, now: float) -> None:
        """A rename: the source is gone, the destination changed (an editor's atomic save is
        a rename of a temporary file onto the note)."""
        with self._lock:
            old = self._items.get(src)
            origin = old.moved_from if old and old.moved_from else src
            self._put(src, "deleted", now, keep_first=False)
            self._put(dest, "changed", now, moved_from=origin, keep_first=False)

    def requeue(self, path: str, item: Pending, now: float) -> None:
        """Put back a path that is not ready yet, unless a newer event replaced it."""
        with self._lock:
            if path not in self._items:
                item.due = now + max(self.debounce, 0.2)
                self._items[path] = item

    def take_due(self, now: float) -> dict[str, Pending]:
        with self._lock:
            ready = {p: it for p, it in self._items.items() if it.due <= now}
            for p in ready:
                del self._items[p]
            return ready

    def next_due(self) -> float | None:
        with self._lock:
            return min((it.due for it in self._items.values()), default=None)

    def has_due(self, now: float) -> bool:
        with self._lock:
            return any(it.due <= now for it in self._items.values())


# ---------------------------------------------------------------- batches


@dataclass
class BatchPlan:
    """A batch of ready paths, in the order to apply them: renames first (identity kept),
    then reads, then deletes (a fact moving between files gains its new support before it
    loses the old one)."""

    moves: list[tuple[str, str]] = field(default_factory=list)  # (old, new)
    reads: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    dir_deletes: list[str] = field(default_factory=list)
    settle: dict[str, Pending] = field(default_factory=dict)   # not ready: requeue


def plan_batch(ready: Mapping[str, Pending], stat: Mapping[str, tuple[float, int] | None],
               ) -> BatchPlan:
    """Order a batch. `stat` maps each path in it (and each `moved_from`) to (mtime, size),
    or None when the path does not exist now."""
    plan = BatchPlan()
    for path, it in sorted(ready.items(), key=lambda kv: kv[1].due):
        now_stat = stat.get(path)
        if it.action == "dir_deleted":
            plan.dir_deletes.append(path)
        elif it.action == "deleted":
            # Trigger: deleted, then written again before the batch ran. Outcome: an edit.
            (plan.reads if now_stat is not None else plan.deletes).append(path)
        elif now_stat is None:
            plan.deletes.append(path)  # created and gone again, or a rename chain moved on
        elif it.action == "settle" and it.stamp != now_stat:
            it.stamp = now_stat
            plan.settle[path] = it
        else:
            if it.moved_from and stat.get(it.moved_from) is None:
                plan.moves.append((it.moved_from, path))
            plan.reads.append(path)
    return plan


# ---------------------------------------------------------------- reconciliation scans

Known = Mapping[str, tuple[float | None, int | None, str, str | None]]  # mtime, size, status, hash


@dataclass
class ScanPlan:
    """What a full scan of a folder found against the store."""

    read: list[str] = field(default_factory=list)      # new or changed on disk
    new: set[str] = field(default_factory=set)         # subset of read: no live source yet
    missing: list[str] = field(default_factory=list)   # live sources whose file is gone
    unchanged: int = 0


def plan_scan(disk: Mapping[str, tuple[float, int]], known: Known,
              ignored: Mapping[str, tuple[float, int]] | None = None) -> ScanPlan:
    """Compare (mtime, size) on disk with the stored sources, without reading any file.

    `ignored` holds files already found not to be for this folder, with the stat they had.
    """
    plan = ScanPlan()
    ignored = ignored or {}
    for uri, st in disk.items():
        k = known.get(uri)
        stored = k is not None and k[2] == "live" and bool(k[3]) and (k[0], k[1]) == st
        if stored or (k is None and ignored.get(uri) == st):
            plan.unchanged += 1
        else:
            plan.read.append(uri)
            if k is None or k[2] != "live":
                plan.new.add(uri)
    plan.missing = sorted(u for u, k in known.items() if k[2] == "live" and u not in disk)
    return plan


def match_renames(new_hashes: Mapping[str, str], missing_hashes: Mapping[str, str | None],
                  ) -> list[tuple[str, str]]:
    """Pair files that appeared with sources that vanished, by content hash: (old, new)."""
    by_hash: dict[str, list[str]] = {}
    for uri, h in sorted(missing_hashes.items()):
        if h:
            by_hash.setdefault(h, []).append(uri)
    pairs = []
    for uri, h in sorted(new_hashes.items()):
        olds = by_hash.get(h)
        if olds:
            pairs.append((olds.pop(0), uri))
    return pairs


def under(path: str, roots: Iterable[str], sep: str = "/") -> bool:
    return any(path == r or path.startswith(r.rstrip(sep) + sep) for r in roots)
