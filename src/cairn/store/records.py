"""Rows of the store: sources, episodes, facts, supports, tombstones (inside a transaction)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from cairn.models import EpisodeDraft, FactDraft

# Trust prior by origin (DESIGN section 4): typed by the user > own note > own chat turn >
# an assistant's turn > OCR of third-party content.
TRUST_PRIOR = {"cli": 0.95, "mcp": 0.9, "note": 0.85, "chat": 0.75, "agent_session": 0.7,
               "import": 0.7, "screenshot": 0.35}
ROLE_TRUST = {"user": 1.0, "other": 0.85, "assistant": 0.65, "third_party": 0.45}


def episode_trust(source_kind: str, role: str) -> float:
    return round(TRUST_PRIOR.get(source_kind, 0.6) * ROLE_TRUST.get(role, 0.8), 4)


# ---------------------------------------------------------------- sources

def get_source(conn: Any, uri: str) -> dict[str, Any] | None:
    cur = conn.execute("select * from sources where uri = ?", (uri,))
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([c[0] for c in cur.description], row, strict=True))


def upsert_source(conn: Any, uri: str, kind: str, now: str) -> int:
    row = conn.execute("select id from sources where uri = ?", (uri,)).fetchone()
    if row:
        conn.execute("update sources set status = 'live', updated_at = ? where id = ?", (now, row[0]))
        return int(row[0])
    cur = conn.execute(
        "insert into sources(kind, uri, trust_prior, created_at, updated_at) values (?, ?, ?, ?, ?)",
        (kind, uri, TRUST_PRIOR.get(kind, 0.6), now, now),
    )
    return int(cur.lastrowid)


def mark_source_read(conn: Any, source_id: int, *, content_hash: str | None, mtime: float | None,
                     size: int | None, now: str, read_offset: int = 0) -> None:
    conn.execute(
        "update sources set content_hash = ?, mtime = ?, size = ?, read_offset = ?, updated_at = ?"
        " where id = ?",
        (content_hash, mtime, size, read_offset, now, source_id),
    )


# ---------------------------------------------------------------- episodes

def episode_keys(conn: Any, source_id: int,
                 hashes: Iterable[str] | None = None) -> dict[tuple[str, str], int]:
    """(locator, content hash) -> id of a source's episodes; with `hashes`, only those (a
    remember into a source of 20k typed memories need not read them all)."""
    sql = "select id, locator, content_hash from episodes where source_id = ?"
    if hashes is None:
        return {(r[1], r[2]): int(r[0]) for r in conn.execute(sql, (source_id,))}
    out: dict[tuple[str, str], int] = {}
    for chunk in chunks(sorted(set(hashes)), 500):
        rows = conn.execute(f"{sql} and content_hash in ({','.join('?' * len(chunk))})",
                            [source_id, *chunk])
        out.update({(r[1], r[2]): int(r[0]) for r in rows})
    return out


def next_id(conn: Any, table: str) -> int:
    """The id for a new row: past every id the table ever had, so a forgotten f12 never comes
    back as another memory (a script or an agent may still hold it). Deletes record the
    high-water mark in counters (migration m003); `integer primary key` alone reuses the top."""
    row = conn.execute(
        f"select max(coalesce((select max(id) from {table}), 0),"
        " coalesce((select value from counters where name = ?), 0)) + 1",
        (f"hwm:{table}",)).fetchone()
    return int(row[0])


def insert_episode(conn: Any, source_id: int, d: EpisodeDraft, chash: str, trust: float,
                   quarantined: bool, now: str, *, searchable: bool = True) -> int:
    """A new episode; searchable=False keeps it out of episode search (see m004)."""
    cur = conn.execute(
        "insert into episodes(id, source_id, locator, speaker, role, occurred_at, text, context,"
        " content_hash, trust, quarantined, created_at, searchable)"
        " values (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (next_id(conn, "episodes"), source_id, d.locator, d.speaker, d.role, d.occurred_at,
         d.text, d.context, chash, trust, int(quarantined), now, int(searchable)),
    )
    return int(cur.lastrowid)


def delete_episodes(conn: Any, ids: Iterable[int]) -> list[int]:
    """Hard-delete episodes; facts left with no support are retracted (deleted).

    Returns the ids of the retracted facts.
    """
    ids = list(ids)
    if not ids:
        return []
    retracted: list[int] = []
    for chunk in chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        fact_ids = [r[0] for r in conn.execute(
            f"select distinct fact_id from supports where episode_id in ({marks})", chunk)]
        conn.execute(f"delete from episodes where id in ({marks})", chunk)  # supports cascade
        if fact_ids:
            fm = ",".join("?" * len(fact_ids))
            orphans = [r[0] for r in conn.execute(
                f"select id from facts where id in ({fm}) and not exists"
                " (select 1 from supports s where s.fact_id = facts.id)", fact_ids)]
            retracted.extend(delete_facts(conn, orphans))
            refresh_trust(conn, [f for f in fact_ids if f not in set(orphans)])
    return retracted


# ---------------------------------------------------------------- facts

def fact_by_hash(conn: Any, chash: str, project: str | None = None) -> int | None:
    row = conn.execute(
        "select id from facts where content_hash = ? and status != 'superseded'"
        " and (project is ? or project = ?) order by id limit 1",
        (chash, project, project),
    ).fetchone()
    return int(row[0]) if row else None


def facts_on(conn: Any, subject: str, attribute: str) -> list[dict[str, Any]]:
    cur = conn.execute(
        "select id, text, value, valid_from, recorded_at, trust, status from facts"
        " where subject = ? and attribute = ? and status in ('active', 'archived')",
        (subject, attribute),
    )
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def insert_fact(conn: Any, f: FactDraft, *, chash: str, trust: float, now: str, origin: str,
                status: str = "active", project: str | None = None, tags: Sequence[str] = (),
                pinned: bool = False, valid_to: str | None = None,
                superseded_by: int | None = None) -> int:
    cur = conn.execute(
        "insert into facts(id, text, kind, subject, attribute, value, valid_from, valid_to,"
        " recorded_at, updated_at, status, superseded_by, trust, pinned, project, tags, origin,"
        " content_hash) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (next_id(conn, "facts"), f.text, f.kind, f.subject, f.attribute, f.value, f.valid_from, valid_to or f.valid_to,
         now, now, status, superseded_by, trust, int(pinned), project, json.dumps(list(tags)),
         origin, chash),
    )
    return int(cur.lastrowid)


def add_support(conn: Any, fact_id: int, episode_id: int, extractor: str, confidence: float,
                now: str) -> bool:
    cur = conn.execute(
        "insert or ignore into supports(fact_id, episode_id, extractor, confidence, created_at)"
        " values (?,?,?,?,?)",
        (fact_id, episode_id, extractor, confidence, now),
    )
    return bool(cur.rowcount)


def refresh_trust(conn: Any, fact_ids: Iterable[int]) -> None:
    """A fact's trust is the noisy-or of its supports' trust: independent supports raise it.

    Only user-typed facts keep their own trust as a floor.
    """
    for fid in fact_ids:
        rows = conn.execute(
            "select e.trust, s.confidence from supports s join episodes e on e.id = s.episode_id"
            " where s.fact_id = ?", (fid,)).fetchall()
        if not rows:
            continue
        miss = 1.0
        for t, c in rows:
            miss *= 1.0 - float(t) * (0.5 + 0.5 * float(c))
        trust = min(0.99, 1.0 - miss)
        conn.execute(
            "update facts set trust = max(?, case when origin = 'typed' then trust else 0 end)"
            " where id = ?", (round(trust, 4), fid))


def delete_facts(conn: Any, ids: Iterable[int]) -> list[int]:
    ids = list(ids)
    for chunk in chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        conn.execute(f"delete from facts where id in ({marks})", chunk)
    return ids


# ---------------------------------------------------------------- tombstones

def tombstone(conn: Any, kind: str, values: Iterable[str], now: str) -> None:
    conn.executemany(
        "insert or ignore into tombstones(kind, value, created_at) values (?, ?, ?)",
        [(kind, v, now) for v in values],
    )


def tombstoned(conn: Any, kind: str, values: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for chunk in chunks(list(values), 500):
        marks = ",".join("?" * len(chunk))
        out.update(r[0] for r in conn.execute(
            f"select value from tombstones where kind = ? and value in ({marks})", (kind, *chunk)))
    return out


def chunks(seq: Sequence[Any], n: int) -> Iterable[list[Any]]:
    for i in range(0, len(seq), n):
        yield list(seq[i:i + n])
