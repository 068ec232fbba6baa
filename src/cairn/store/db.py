"""One place opens every connection: pysqlite3, sqlite-vec, WAL, busy timeout, migrations."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cairn.errors import CairnError, ExtensionUnavailable, StoreBusy

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000


def _driver() -> Any:
    # Stdlib sqlite3 on many Python builds cannot load extensions: pysqlite3 is the one driver.
    try:
        import pysqlite3.dbapi2 as sqlite3
    except ImportError:  # pragma: no cover - pysqlite3 is a hard dependency
        raise ExtensionUnavailable(
            "pysqlite3 is not installed. Run 'pip install pysqlite3' (or 'make install')."
        ) from None
    return sqlite3


def sqlite_module() -> Any:
    return _driver()


def _create_private_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does; its -wal/-shm inherit the mode."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    try:
        os.chmod(path, 0o600)
    except OSError:
        pass


def load_sqlite_vec(conn: Any) -> None:
    try:
        import sqlite_vec

        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
    except (ImportError, AttributeError, Exception) as e:  # noqa: BLE001 - any failure is the same remedy
        raise ExtensionUnavailable(
            f"cannot load sqlite-vec ({e}). Run 'pip install sqlite-vec' (or 'make install')."
        ) from None


def connect(path: Path | str, *, migrate: bool = True, readonly: bool = False) -> Any:
    """Open the store: pysqlite3 with sqlite-vec loaded, WAL, busy timeout, foreign keys, migrated.

    The connection is in autocommit mode; writes go through `write_transaction`.
    """
    sqlite3 = _driver()
    path = Path(path)
    if readonly:
        if not path.exists():
            raise CairnError(f"no store at {path}. Run 'cairn remember' or 'cairn ingest' first.")
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None, check_same_thread=False,
        )
    else:
        _create_private_file(path)
        conn = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
            check_same_thread=False,
        )
    try:
        conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            _set_wal(conn)
        conn.execute("pragma foreign_keys = on")
        # Forgotten text must leave the file: freed pages are overwritten with zeros.
        conn.execute("pragma secure_delete = on")
        conn.execute("pragma synchronous = normal")  # WAL + normal: durable at checkpoint, never corrupt
        load_sqlite_vec(conn)
        if migrate and not readonly:
            from cairn.store.migrations import apply_migrations

            apply_migrations(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _set_wal(conn: Any) -> None:
    # Switching to WAL needs a moment without other writers; retry instead of failing.
    for attempt in range(50):
        try:
            conn.execute("pragma journal_mode = wal")
            return
        except Exception as e:  # pysqlite3.OperationalError: database is locked
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            time.sleep(0.05 + random.random() * 0.05 * attempt)
    raise StoreBusy("the store stayed locked while switching to WAL; try again")


@contextlib.contextmanager
def write_transaction(conn: Any) -> Iterator[Any]:
    """A short BEGIN IMMEDIATE transaction: the writer lock is taken up front, so a
    transaction never fails half-way with 'database is locked'. Busy waits are handled
    by busy_timeout, and a last-resort retry on BEGIN covers the rest."""
    for attempt in range(20):
        try:
            conn.execute("begin immediate")
            break
        except Exception as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            log.debug("store busy on begin (attempt %d)", attempt + 1)
            time.sleep(0.05 + random.random() * 0.2)
    else:
        raise StoreBusy("the store stayed locked by another writer for too long; try again")
    try:
        yield conn
    except BaseException:
        conn.execute("rollback")
        raise
    else:
        conn.execute("commit")
