"""The vector first pass: sqlite-vec for one-shot processes, an in-memory copy for long-lived
ones that follows inserts, deletes and other processes' writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cairn.store import vectors
from conftest import run_cli


def vector_ids(memory: Any, query: str) -> list[int]:
    """Nearest facts (a remembered text is searched as its fact: migration m004)."""
    q = memory.embedder.embed([query])[0]
    return [i for i, _ in vectors.knn(memory.store.conn, "facts", q, 5, first_pass=20)]


def test_cache_follows_writes(memory: Any, home: Path) -> None:
    vectors._CACHES.clear()
    memory.remember("The lighthouse keeper's name is Agnes")
    first = vector_ids(memory, "lighthouse keeper")      # one-shot path: sqlite-vec
    assert vectors._CACHES and all(v is None for v in vectors._CACHES.values())
    second = vector_ids(memory, "lighthouse keeper")     # now from memory
    assert first[:1] == second[:1]
    assert any(v is not None for v in vectors._CACHES.values())
    # an insert by this process
    out = memory.remember("Our canoe is stored in the boathouse by the pier")
    eid = int(out["id"][1:])
    assert vector_ids(memory, "where is the canoe kept")[0] == eid
    # an insert by another process
    run_cli("remember", "The glacier hike starts at the ranger station", home=home, check=True)
    eid2 = memory.store.conn.execute("select max(id) from facts").fetchone()[0]
    assert vector_ids(memory, "glacier hike start")[0] == eid2
    # a delete
    memory.forget_apply(memory.forget_plan([out["id"]]))
    assert eid not in vector_ids(memory, "where is the canoe kept")


def test_numpy_and_sqlite_vec_agree(memory: Any) -> None:
    colours = ["red", "blue", "green", "amber", "violet"]
    things = ["folder", "kayak", "invoice", "garden", "violin", "passport", "tent"]
    for i in range(150):
        memory.remember(f"Note {i}: the {colours[i % 5]} {things[i % 7]} holds item {i}")
    conn = memory.store.conn
    rng = np.random.default_rng(1)
    cache = vectors._BitCache()
    cache.refresh(conn, "facts")
    emb = np.frombuffer(b"".join(r[0] for r in conn.execute(
        "select embedding from facts_emb order by id")), dtype=np.float32).reshape(-1, 384)
    ids = [r[0] for r in conn.execute("select id from facts_emb order by id")]
    assert len(ids) == 150
    assert [int(i) for i in cache.ids] == ids
    for _ in range(5):
        q = rng.standard_normal(384).astype(np.float32)
        q /= np.linalg.norm(q)
        # The numpy Hamming distances are sqlite-vec's, row for row.
        theirs = dict(conn.execute(
            "select rowid, distance from facts_vec where embedding_bin match"
            " vec_quantize_binary(?) and k = 150", (q.tobytes(),)).fetchall())
        mine = dict(zip(ids, cache.hamming(q).tolist(), strict=True))
        assert mine == {k: int(v) for k, v in theirs.items()}
        # Rescoring in int8: each cosine within 2e-3 of float32's, so the 5 picked are the
        # exact top 5 up to near-ties (a random query's cosines are ~1e-3 apart).
        sims = dict(zip(ids, (emb @ q).tolist(), strict=True))
        fifth = sorted(sims.values(), reverse=True)[4]
        got = cache.nearest(q, 150, 5)
        assert len(got) == 5
        for i, sim in got:
            assert abs(sim - sims[i]) < 2e-3
            assert sims[i] >= fifth - 4e-3
        # The one-shot path (sqlite-vec first pass, float32 blobs from SQLite) is exact.
        exact = [ids[j] for j in np.argsort(-(emb @ q))[:5]]
        vectors._CACHES.clear()  # a process's first knn takes the one-shot path
        assert [i for i, _ in vectors.knn(conn, "facts", q, 5, first_pass=150)] == exact
