"""Vector tables: a sqlite-vec vec0 table of binary-quantized vectors for the fast first pass,
and a rowid table of float32 vectors for rescoring.

Why not the float column inside vec0: vec0 keeps vectors in 1,024-row chunk blobs, so
fetching 100 rows by rowid for rescoring reads whole chunks (~8 ms at 20k rows here); a
plain rowid table answers the same in under 1 ms. Both are keyed by the fact/episode id,
and triggers delete a row's vectors with the row (vec0 clears a deleted vector's bytes in its
chunk; the float table is a plain table under secure_delete).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cairn.store.db import write_transaction

TABLES = ("facts", "episodes")


def model_row(conn: Any) -> tuple[str, int] | None:
    row = conn.execute(
        "select model_id, dimensions from embedding_models order by id desc limit 1"
    ).fetchone()
    return (row[0], int(row[1])) if row else None


def _create(conn: Any, dims: int) -> None:
    for t in TABLES:
        conn.execute(f"create virtual table {t}_vec using vec0(embedding_bin bit[{dims}])")
        conn.execute(
            f"create table {t}_emb (id integer primary key references {t}(id) on delete cascade,"
            " embedding blob not null)"
        )
        conn.execute(
            f"""create trigger {t}_vec_ad after delete on {t} begin
                delete from {t}_vec where rowid = old.id;
            end"""
        )
        # Generation counters let a long-lived process keep its in-memory copy of the binary
        # vectors current with one tiny read per query (see _BitCache).
        conn.execute("insert or ignore into counters(name, value) values (?, 0), (?, 0)",
                     (f"vec_ins:{t}", f"vec_del:{t}"))
        conn.execute("update counters set value = value + 1 where name = ?", (f"vec_del:{t}",))
        conn.execute(
            f"""create trigger {t}_emb_ai after insert on {t}_emb begin
                update counters set value = value + 1 where name = 'vec_ins:{t}';
            end""")
        conn.execute(
            f"""create trigger {t}_emb_ad after delete on {t}_emb begin
                update counters set value = value + 1 where name = 'vec_del:{t}';
            end""")


def _drop(conn: Any) -> None:
    for t in TABLES:
        conn.execute(f"drop trigger if exists {t}_vec_ad")
        conn.execute(f"drop trigger if exists {t}_emb_ai")
        conn.execute(f"drop trigger if exists {t}_emb_ad")
        conn.execute(f"drop table if exists {t}_vec")
        conn.execute(f"drop table if exists {t}_emb")


def ensure_model(conn: Any, model_id: str, dims: int, now: str) -> bool:
    """Make the vector tables match the model; a different model drops and rebuilds them.

    Returns True when the tables were (re)created, so every row needs embedding again.
    """
    if dims % 8:
        raise ValueError("embedding dimensions must be a multiple of 8")
    current = model_row(conn)
    if current == (model_id, dims):
        return False
    with write_transaction(conn):
        current = model_row(conn)  # another process may have done it meanwhile
        if current == (model_id, dims):
            return False
        _drop(conn)
        _create(conn, dims)
        conn.execute("delete from embedding_models")
        conn.execute(
            "insert into embedding_models(model_id, dimensions, created_at) values (?, ?, ?)",
            (model_id, dims, now),
        )
    return True


def put(conn: Any, table: str, ids: Sequence[int], vectors: np.ndarray) -> None:
    """Store vectors for rows (inside the caller's transaction)."""
    assert table in TABLES
    vecs = np.ascontiguousarray(vectors, dtype=np.float32)
    rows = [(int(i), vecs[k].tobytes()) for k, i in enumerate(ids)]
    conn.executemany(f"delete from {table}_vec where rowid = ?", [(r[0],) for r in rows])
    conn.executemany(
        f"insert into {table}_vec(rowid, embedding_bin) values (?, vec_quantize_binary(?))", rows
    )
    conn.executemany(f"insert or replace into {table}_emb(id, embedding) values (?, ?)", rows)


def missing(conn: Any, table: str, limit: int = 10_000) -> list[int]:
    """Rows with no vector yet (after a model change or an interrupted ingest)."""
    assert table in TABLES
    searched = " and t.searchable" if table == "episodes" else ""  # see migration m004
    return [
        r[0]
        for r in conn.execute(
            f"select t.id from {table} t left join {table}_emb e on e.id = t.id"
            f" where e.id is null{searched} limit ?",
            (limit,),
        )
    ]


class _BitCache:
    """The binary vectors of one table, in memory, for a numpy Hamming first pass.

    Why: sqlite-vec's binary KNN costs grow with k (1.3 ms at k=50, 5.6 ms at k=200 over 20k
    rows here), while XOR + popcount over packed words is ~0.1 ms for any k. A process that
    recalls more than once (daemon, MCP server, benchmarks) loads the matrix on its second
    query and then follows inserts incrementally; a delete reloads it.

    The sign bits are kept as 64-bit words, one contiguous array per word position, so the
    distance is a few whole-array XOR + popcount + add passes (6 for 384 dimensions): 0.09 ms
    over 21k rows, against 0.6 ms for a row-wise reduction of the same bits.

    It also keeps an int8 copy of the vectors (one scale per row) for the rescoring: gathering
    300 candidate rows and their cosines is ~0.03 ms, against ~1.5 ms to read their float32
    blobs back from SQLite (0.2 ms from a float16 copy, whose conversion is slow), and the int8
    cosines differ from float32 by ~1e-3, far below the gaps that order candidates.
    Cost: ~400 bytes a row (8 MB at 20k rows of 384-d), in processes that recall often.
    """

    def __init__(self) -> None:
        self._empty()
        self.ins = -1
        self.dels = -1

    def _empty(self) -> None:
        self.ids = np.zeros(0, dtype=np.int64)
        self.words = np.zeros((0, 0), dtype=np.uint64)  # [word, row]
        self.i8 = np.zeros((0, 0), dtype=np.int8)  # [row, dimension]
        self.scale = np.zeros(0, dtype=np.float32)
        self.max_id = 0

    def refresh(self, conn: Any, table: str) -> None:
        got = dict(conn.execute("select name, value from counters where name in (?, ?)",
                                (f"vec_ins:{table}", f"vec_del:{table}")).fetchall())
        ins, dels = int(got.get(f"vec_ins:{table}", 0)), int(got.get(f"vec_del:{table}", 0))
        if ins == self.ins and dels == self.dels:
            return
        if dels == self.dels and self.ins >= 0:
            rows = conn.execute(f"select id, embedding from {table}_emb where id > ? order by id",
                                (self.max_id,)).fetchall()
            if len(rows) == ins - self.ins:
                self._append(rows)
                self.ins = ins
                return
        rows = conn.execute(f"select id, embedding from {table}_emb order by id").fetchall()
        self._empty()
        self._append(rows)
        self.ins, self.dels = ins, dels

    @staticmethod
    def _pack(mat: np.ndarray) -> np.ndarray:
        """Sign bits of each row as 64-bit words (zero-padded), shaped [word, row]."""
        bits = np.packbits(mat > 0, axis=-1)
        pad = -bits.shape[-1] % 8
        if pad:
            bits = np.pad(bits, [(0, 0)] * (bits.ndim - 1) + [(0, pad)])
        return np.ascontiguousarray(bits.view(np.uint64).T)

    def _append(self, rows: list[Any]) -> None:
        if not rows:
            return
        mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        words = self._pack(mat)
        scale = np.maximum(np.abs(mat).max(axis=1), np.float32(1e-12)) / np.float32(127)
        i8 = np.rint(mat / scale[:, None]).astype(np.int8)
        if self.ids.size == 0:  # the first rows set the width
            self.words, self.i8, self.scale = words, i8, scale
        else:
            self.words = np.concatenate([self.words, words], axis=1)
            self.i8 = np.vstack([self.i8, i8])
            self.scale = np.concatenate([self.scale, scale])
        self.ids = np.concatenate([self.ids, ids])
        self.max_id = int(self.ids[-1])

    def hamming(self, query: np.ndarray) -> np.ndarray:
        """Hamming distance of every row's sign bits to the query's (row order of self.ids)."""
        q = self._pack(query[None, :])[:, 0]
        dist = np.zeros(self.ids.size, dtype=np.uint16)
        tmp = np.empty(self.ids.size, dtype=np.uint64)
        for word, qw in zip(self.words, q, strict=True):
            np.bitwise_xor(word, qw, out=tmp)
            dist += np.bitwise_count(tmp)
        return dist

    def nearest(self, query: np.ndarray, n: int, k: int) -> list[tuple[int, float]]:
        """Hamming first pass for n candidates, then the k best by (int8) cosine."""
        if self.ids.size == 0:
            return []
        dist = self.hamming(query)
        pick = np.arange(dist.size) if n >= dist.size else np.argpartition(dist, n)[:n]
        sims = (self.i8[pick].astype(np.float32) @ query) * self.scale[pick]
        order = np.argsort(-sims, kind="stable")[:k]
        return [(int(self.ids[pick[i]]), float(sims[i])) for i in order]


_CACHES: dict[tuple[str, str], _BitCache | None] = {}


def _cache(conn: Any, table: str) -> _BitCache | None:
    path = conn.execute("pragma database_list").fetchone()[2] or f":memory:{id(conn)}"
    key = (path, table)
    if key not in _CACHES:
        # A one-shot process (a CLI recall) asks sqlite-vec and never pays for the load.
        _CACHES[key] = None
        return None
    cache = _CACHES[key]
    if cache is None:
        cache = _CACHES[key] = _BitCache()
    cache.refresh(conn, table)
    return cache


def knn(conn: Any, table: str, query: np.ndarray, k: int, first_pass: int) -> list[tuple[int, float]]:
    """Nearest rows by cosine similarity: hamming first pass over the binary vectors,
    then rescoring of the `first_pass` candidates with the float vectors."""
    assert table in TABLES
    q = np.ascontiguousarray(query, dtype=np.float32)
    cache = _cache(conn, table)
    if cache is not None:
        # In memory the first pass is cheap for any n: take more candidates for the rescoring.
        return cache.nearest(q, 3 * first_pass, k)
    cand = [r[0] for r in conn.execute(
        f"select rowid from {table}_vec where embedding_bin match vec_quantize_binary(?)"
        " and k = ?", (q.tobytes(), first_pass))]
    if not cand:
        return []
    rows = conn.execute(
        f"select id, embedding from {table}_emb where id in ({','.join('?' * len(cand))})", cand
    ).fetchall()
    if not rows:
        return []
    mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    sims = mat @ q
    order = np.argsort(-sims)[:k]
    return [(int(rows[i][0]), float(sims[i])) for i in order]
