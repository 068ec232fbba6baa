"""connect(): one driver, sqlite-vec loaded, WAL, busy timeout, foreign keys, private files."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from cairn.store import Store
from cairn.store.db import connect


def test_connect_sets_up_everything(tmp_path: Path) -> None:
    db = tmp_path / "d" / "cairn.db"
    conn = connect(db)
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert conn.execute("pragma foreign_keys").fetchone()[0] == 1
    assert conn.execute("pragma busy_timeout").fetchone()[0] >= 5000
    assert conn.execute("pragma secure_delete").fetchone()[0] == 1
    assert conn.execute("select vec_version()").fetchone()[0].startswith("v0.1")
    tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    for t in ("sources", "episodes", "facts", "supports", "tombstones", "job_runs",
              "embedding_models", "facts_fts", "episodes_fts"):
        assert t in tables, t
    conn.execute("insert into counters(name, value) values ('x', 1)")
    conn.close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    for side in db.parent.glob("cairn.db-*"):
        assert stat.S_IMODE(side.stat().st_mode) & 0o077 == 0, side


def test_migrations_apply_once(tmp_path: Path) -> None:
    db = tmp_path / "cairn.db"
    connect(db).close()
    conn = connect(db)
    from cairn.store.migrations import migrations

    names = [r[0] for r in conn.execute(
        "select name from _sqlite_migrations where migration_set = 'cairn' order by id")]
    assert names == [m.name for m in migrations._migrations]  # each once, in order
    assert conn.execute("select 1 from sqlite_master where name = 'facts_recorded_at'").fetchone()
    conn.close()


def test_foreign_keys_cascade(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "cairn.db")
    c = store.conn
    with store.transaction():
        c.execute("insert into sources(kind, uri, trust_prior, status, created_at, updated_at)"
                  " values ('note', '/x', 0.8, 'live', 'now', 'now')")
        c.execute("insert into episodes(source_id, locator, text, content_hash, trust, created_at,"
                  " role) values (1, 'L1-L1', 'canary text', 'h', 0.8, 'now', 'user')")
    with store.transaction():
        c.execute("delete from sources where id = 1")
    assert c.execute("select count(*) from episodes").fetchone()[0] == 0
    store.close()


WRITER = r"""
import sys
from cairn.config import load_settings
from cairn.service import Memory
m = Memory(load_settings())
for i in range(int(sys.argv[2])):
    m.remember(f"writer {sys.argv[1]} note number {i} about topic {i * 7 % 13}")
print("done")
"""


def test_concurrent_writers_never_see_locked(home: Path) -> None:
    """Four processes remembering at once: no 'database is locked', nothing lost."""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(w), "40"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "CAIRN_HOME": str(home)})
             for w in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err
    conn = connect(home / "cairn.db")
    assert conn.execute("select count(*) from facts").fetchone()[0] == 160
    assert conn.execute("select count(*) from episodes").fetchone()[0] == 160
    conn.close()
