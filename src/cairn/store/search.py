"""Search primitives: FTS5 bm25 over facts and episodes, and loading hit rows with provenance."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from cairn.store.records import chunks

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

# Words that carry no topic: left out of the OR query so they do not match everything.
STOPWORDS = frozenset(
    """a an and are as at be been but by can could did do does for from had has have he her
    hers him his how i if in into is it its me my of on or our she so than that the their them
    then there these they this those to was we were what when where which who whom why will
    with would you your yours about any all am just not no yes also ever""".split()
)


def fts_query(text: str) -> str | None:
    """An FTS5 OR-query of the text's words, each quoted so user text is never FTS syntax."""
    words = [w.lower() for w in _WORD.findall(text)]
    keep = [w for w in words if w not in STOPWORDS and len(w) > 1] or words
    seen: dict[str, None] = {}
    for w in keep:
        seen.setdefault(w, None)
    if not seen:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in seen)


def fts(conn: Any, table: str, query: str, k: int) -> list[tuple[int, float]]:
    """Rows matching the query, best bm25 first (bm25 is lower-is-better; returned negated)."""
    assert table in ("facts", "episodes")
    q = fts_query(query)
    if q is None:
        return []
    rows = conn.execute(
        f"select rowid, bm25({table}_fts) from {table}_fts where {table}_fts match ?"
        f" order by bm25({table}_fts) limit ?",
        (q, k),
    ).fetchall()
    return [(int(r[0]), -float(r[1])) for r in rows]


def fts_with_rows(conn: Any, table: str, query: str, k: int,
                  ) -> tuple[list[tuple[int, float]], dict[int, dict[str, Any]]]:
    """fts() and the rows of its hits (load_facts / load_episodes), on one connection."""
    hits = fts(conn, table, query, k)
    load = load_facts if table == "facts" else load_episodes
    return hits, load(conn, [rid for rid, _ in hits])


def load_facts(conn: Any, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    cur = conn.execute(
        "select id, text, kind, subject, attribute, value, valid_from, valid_to, recorded_at,"
        f" status, trust, strength, pinned, project, last_recalled_at from facts where id in ({marks})",
        list(ids),
    )
    cols = [c[0] for c in cur.description]
    return {r[0]: dict(zip(cols, r, strict=True)) for r in cur.fetchall()}


def load_episodes(conn: Any, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    cur = conn.execute(
        "select e.id, e.text, e.locator, e.speaker, e.role, e.occurred_at, e.trust, e.quarantined,"
        " e.created_at, e.context, e.source_id, s.kind as source_kind, s.uri"
        f" from episodes e join sources s on s.id = e.source_id where e.id in ({marks})",
        list(ids),
    )
    cols = [c[0] for c in cur.description]
    return {r[0]: dict(zip(cols, r, strict=True)) for r in cur.fetchall()}


def fact_sources(conn: Any, fact_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Provenance of facts: the episodes that support each, oldest first."""
    out: dict[int, list[dict[str, Any]]] = {f: [] for f in fact_ids}
    if not fact_ids:
        return out
    marks = ",".join("?" * len(fact_ids))
    cur = conn.execute(
        "select sp.fact_id, e.id as episode_id, s.kind, s.uri, e.locator, e.speaker, e.role,"
        " e.occurred_at, e.text from supports sp join episodes e on e.id = sp.episode_id"
        f" join sources s on s.id = e.source_id where sp.fact_id in ({marks})"
        " order by sp.fact_id, e.occurred_at, e.id",
        list(fact_ids),
    )
    cols = [c[0] for c in cur.description]
    for r in cur.fetchall():
        d = dict(zip(cols, r, strict=True))
        out[d["fact_id"]].append(d)
    return out


def fact_episodes(conn: Any, fact_ids: Sequence[int]) -> dict[int, list[int]]:
    """The ids of the episodes that support each fact (supports' primary key: no table reads)."""
    out: dict[int, list[int]] = {f: [] for f in fact_ids}
    for chunk in chunks(list(fact_ids), 500):
        rows = conn.execute("select fact_id, episode_id from supports where fact_id in"
                            f" ({','.join('?' * len(chunk))}) order by fact_id, episode_id",
                            chunk)
        for fid, eid in rows:
            out[fid].append(eid)
    return out


def next_episodes(conn: Any, ids: Sequence[int]) -> dict[int, int]:
    """For each episode, the one right after it in the same source (the reply to a message)."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        "select e.id, (select min(n.id) from episodes n where n.source_id = e.source_id"
        f" and n.id > e.id) from episodes e where e.id in ({marks})", list(ids)).fetchall()
    return {int(a): int(b) for a, b in rows if b is not None}


_NAME = re.compile(r"\b[A-Z][a-z]{1,30}\b")


def named_speakers(conn: Any, query: str) -> set[str]:
    """Capitalised words of the query that are speakers in the store ("what did Ana say")."""
    names = {w for w in _NAME.findall(query) if w.lower() not in STOPWORDS}
    return {n for n in names
            if conn.execute("select 1 from episodes where speaker = ? limit 1", (n,)).fetchone()}
