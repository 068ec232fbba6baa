"""A remembered text is one memory: its episode is searched through its fact (migration m004),
unless the fact it merged into is worded otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cairn.store import vectors
from cairn.store.db import connect


def one(memory: Any, sql: str, *args: Any) -> Any:
    return memory.store.conn.execute(sql, args).fetchone()[0]


def fts_ids(memory: Any, table: str, word: str) -> list[int]:
    return [r[0] for r in memory.store.conn.execute(
        f"select rowid from {table}_fts where {table}_fts match ?", (word,))]


def integrity_ok(conn: Any) -> None:
    for t in ("facts", "episodes"):
        conn.execute(f"insert into {t}_fts({t}_fts, rank) values ('integrity-check', 1)")


def test_a_remembered_text_is_searched_as_its_fact_only(memory: Any) -> None:
    got = memory.remember("The spare key is under the blue pot", origin="mcp", client="x")
    fid = int(got["id"][1:])
    eid = one(memory, "select episode_id from supports where fact_id = ?", fid)
    assert one(memory, "select searchable from episodes where id = ?", eid) == 0
    assert fts_ids(memory, "episodes", "spare") == []
    assert fts_ids(memory, "facts", "spare") == [fid]
    assert one(memory, "select count(*) from episodes_emb where id = ?", eid) == 0
    assert one(memory, "select count(*) from facts_emb where id = ?", fid) == 1
    integrity_ok(memory.store.conn)
    for _ in range(2):  # the one-shot path, then the in-memory one
        hits = memory.recall("where is the spare key", reinforce=False).hits
        assert hits[0].id == f"f{fid}"
        assert [s.kind for s in hits[0].sources] == ["mcp"]
        assert all(h.id != f"e{eid}" for h in hits)


def test_merged_into_other_words_the_episode_stays_searchable(memory: Any) -> None:
    first = memory.remember("I live in Lisbon", origin="mcp", client="x")
    again = memory.remember("I live in Lisbon now", origin="mcp", client="x")
    assert again["action"] == "merged" and again["id"] == first["id"]
    eids = [r[0] for r in memory.store.conn.execute(
        "select episode_id from supports where fact_id = ? order by episode_id",
        (int(first["id"][1:]),))]
    assert len(eids) == 2
    flags = [one(memory, "select searchable from episodes where id = ?", e) for e in eids]
    assert flags == [0, 1]
    # the second wording is findable by its own words: keyword and vector
    assert fts_ids(memory, "episodes", "now") == [eids[1]]
    q = memory.embedder.embed(["I live in Lisbon now"])[0]
    near = vectors.knn(memory.store.conn, "episodes", q, 1, first_pass=10)
    assert near[0][0] == eids[1] and near[0][1] > 0.99
    integrity_ok(memory.store.conn)


def test_chat_episodes_stay_searchable(memory: Any, tmp_path: Path) -> None:
    chat = tmp_path / "c.chat.jsonl"
    chat.write_text('{"id": "1", "speaker": "Ana", "text": "The canoe is in the boathouse."}\n')
    memory.ingest([chat])
    assert one(memory, "select count(*) from episodes where not searchable") == 0
    assert len(fts_ids(memory, "episodes", "canoe")) == 1


def test_forgetting_a_remembered_text_leaves_the_index_sound(memory: Any) -> None:
    keep = memory.remember("Lunch is at noon on Fridays", origin="mcp", client="x")
    gone = memory.remember("The vault code word is heron", origin="mcp", client="x")
    memory.forget_apply(memory.forget_plan([gone["id"]]))
    assert fts_ids(memory, "facts", "heron") == []
    assert one(memory, "select count(*) from episodes") == 1
    integrity_ok(memory.store.conn)
    assert memory.recall("lunch on fridays", reinforce=False).hits[0].id == keep["id"]


def test_migration_moves_remembered_episodes_of_older_stores(tmp_path: Path) -> None:
    """A store written before m004: a typed episode indexed twice and a chat episode."""
    import pysqlite3
    from sqlite_utils import Database

    from cairn.store.db import load_sqlite_vec
    from cairn.store.migrations import migrations

    path = tmp_path / "old.db"
    raw = pysqlite3.connect(str(path))
    load_sqlite_vec(raw)
    migrations.apply(Database(raw), stop_before="m004_searchable_episodes")
    now = "2026-01-01T00:00:00Z"
    rows = [(1, "mcp", "mcp:x", "The spare key is under the blue pot", "typed"),
            (2, "chat", "/c.chat.jsonl", "The spare key is under the blue pot", "extracted")]
    vectors.ensure_model(raw, "m", 384, now)
    rng = np.random.default_rng(0)
    for i, kind, uri, text, origin in rows:
        raw.execute("insert into sources(id, kind, uri, trust_prior, created_at, updated_at)"
                    " values (?,?,?,?,?,?)", (i, kind, uri, 0.9, now, now))
        raw.execute("insert into episodes(id, source_id, locator, role, text, content_hash,"
                    " trust, quarantined, created_at) values (?,?,?,?,?,?,?,?,?)",
                    (i, i, "1", "user", text, f"h{i}", 0.9, 0, now))
        raw.execute("insert into facts(id, text, kind, subject, content_hash, recorded_at,"
                    " updated_at, status, trust, origin) values (?,?,?,?,?,?,?,?,?,?)",
                    (i, text, "knowledge", "user", f"f{i}", now, now, "active", 0.9, origin))
        raw.execute("insert into supports(fact_id, episode_id, extractor, confidence, created_at)"
                    " values (?,?,?,?,?)", (i, i, "x", 1.0, now))
        vec = rng.standard_normal((1, 384)).astype(np.float32)
        vectors.put(raw, "episodes", [i], vec)
        vectors.put(raw, "facts", [i], vec)
    raw.commit()
    raw.close()

    conn = connect(path)  # applies m004
    assert conn.execute("select id, searchable from episodes order by id").fetchall() == \
        [(1, 0), (2, 1)]
    assert [r[0] for r in conn.execute("select id from episodes_emb")] == [2]
    assert [r[0] for r in conn.execute("select rowid from episodes_vec")] == [2]
    assert [r[0] for r in conn.execute(
        "select rowid from episodes_fts where episodes_fts match 'spare'")] == [2]
    assert conn.execute("select count(*) from facts_emb").fetchone()[0] == 2
    integrity_ok(conn)
    conn.close()
