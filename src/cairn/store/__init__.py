"""The store: one SQLite file (WAL) with FTS5 and sqlite-vec, opened through `connect()`."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cairn.store.db import connect, write_transaction


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def content_hash(text: str) -> str:
    """Tagged by algorithm, so a later change of hash does not collide."""
    return "b2:" + hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class Store:
    """An open store. Not thread-safe: one per thread (the daemon's writer owns its own)."""

    def __init__(self, conn: Any, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False) -> Store:
        return cls(connect(path, readonly=readonly), path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> Any:
        return write_transaction(self.conn)

    def bump(self, name: str, n: int = 1) -> None:
        """Add to a named counter (inside the caller's transaction)."""
        self.conn.execute(
            "insert into counters(name, value) values (?, ?)"
            " on conflict(name) do update set value = value + excluded.value",
            (name, n),
        )

    def counters(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.conn.execute("select name, value from counters")}

    def checkpoint(self) -> None:
        """Fold the WAL into the database and truncate it, so deleted text leaves the WAL."""
        self.conn.execute("pragma wal_checkpoint(truncate)")


__all__ = ["Store", "connect", "content_hash", "iso", "utcnow", "write_transaction"]
