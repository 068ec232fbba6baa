"""Extraction again over stored episodes (`cairn reextract`): better rules or a local model later.

Every support records the extractor that made it (`rules@2`, `llama@1+qwen2.5-1.5b-…`) and every
episode the one that last ran on it, so re-running knows what is out of date. For each episode
made by another extractor (or all of them with `force`), in chunks:

1. the chosen extractor runs outside the write lock;
2. in one short transaction, the episode's extracted supports are removed (supports by `user@1`,
   the user's typed and imported facts, are never touched), the new drafts go through the
   resolver as at ingest, facts no support holds any more are retracted, and a fact they had
   superseded is current again unless the new facts supersede it anew;
3. a fact the new extractor states in the same words keeps its id, its recall history and its
   pin; it takes the new labels (kind, subject, attribute, value).

A failed extraction keeps the episode and its old facts and counts the error, as ingest does.
An interrupted run leaves whole chunks done; the next run carries on where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cairn.extraction.base import extractor_id
from cairn.ingest.pipeline import Ingestor
from cairn.ingest.resolver import fact_hash, resolve, settle
from cairn.models import EpisodeDraft
from cairn.store import Store, iso, utcnow, vectors
from cairn.store import records as r

log = logging.getLogger(__name__)

CHUNK = 128
USER = "user@1"  # supports of typed and imported facts: the user's own words

Progress = Callable[[str, int, int | None], None]


@dataclass
class ReextractReport:
    extractor: str
    episodes: int = 0  # episodes the run looked at
    episodes_done: int = 0
    episodes_current: int = 0  # already made by this extractor, left alone
    episodes_failed: int = 0  # the extractor failed on them: kept, old facts kept
    facts_added: int = 0
    facts_merged: int = 0
    facts_superseded: int = 0
    facts_retracted: int = 0
    facts_restored: int = 0  # superseded by a retracted fact, current again
    dry_run: bool = False
    by_extractor: dict[str, int] = field(default_factory=dict)  # episodes before the run

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_SELECT = """
    select e.id, e.locator, e.speaker, e.role, e.occurred_at, e.text, e.context, e.quarantined,
           s.kind, e.extracted_by, e.extraction_error
    from episodes e join sources s on s.id = e.source_id
    where coalesce(e.extracted_by, '') != ? and s.kind not in ('cli', 'mcp')
"""


def plan(store: Store, ex_id: str, *, force: bool = False) -> tuple[list[int], dict[str, int], int]:
    """(episode ids to redo, episodes by extractor, episodes already current)."""
    conn = store.conn
    by: dict[str, int] = {}
    todo: list[int] = []
    current = 0
    for eid, made_by, error in conn.execute(
            "select e.id, coalesce(e.extracted_by, ''), e.extraction_error from episodes e"
            " join sources s on s.id = e.source_id"
            " where coalesce(e.extracted_by, '') != ? and s.kind not in ('cli', 'mcp')"
            " order by e.id", (USER,)):
        by[made_by or "(none)"] = by.get(made_by or "(none)", 0) + 1
        if force or made_by != ex_id or error is not None:
            todo.append(int(eid))
        else:
            current += 1
    return todo, by, current


def reextract(store: Store, embedder: Any, extractor: Any, *, force: bool = False,
              dry_run: bool = False, progress: Progress | None = None) -> ReextractReport:
    """Run `extractor` again over the episodes an older or other extractor made."""
    ex_id = extractor_id(extractor)
    todo, by, current = plan(store, ex_id, force=force)
    rep = ReextractReport(extractor=ex_id, episodes=len(todo) + current,
                          episodes_current=current, by_extractor=by, dry_run=dry_run)
    if dry_run or not todo:
        return rep
    ing = Ingestor(store, embedder, extractor)
    ing._ensure_model()
    if progress:
        progress("episodes", 0, len(todo))
    for start in range(0, len(todo), CHUNK):
        ids = todo[start:start + CHUNK]
        _chunk(store, ing, ids, rep)
        if progress:
            progress("episodes", len(ids), None)
    return rep


def _chunk(store: Store, ing: Ingestor, ids: list[int], rep: ReextractReport) -> None:
    conn = store.conn
    marks = ",".join("?" * len(ids))
    rows = conn.execute(_SELECT + f" and e.id in ({marks}) order by e.id", (USER, *ids)).fetchall()
    drafts = [EpisodeDraft(text=x[5], locator=x[1], speaker=x[2], role=x[3], occurred_at=x[4],
                           context=x[6] or "") for x in rows]
    facts, outcomes = ing.extract_facts(drafts)
    ep_vecs = _episode_vectors(conn, [int(x[0]) for x in rows])
    fact_vecs = ing._embed_facts(facts, drafts, ep_vecs)
    now = iso(utcnow())
    with store.transaction():
        for row, draft, fl, out in zip(rows, drafts, facts, outcomes, strict=True):
            eid, quarantined, source_kind = int(row[0]), bool(row[7]), row[8]
            conn.execute("update episodes set extracted_by = ?, extraction_error = ? where id = ?",
                         (out.extractor, out.error, eid))
            if out.error and not fl:
                # Trigger: the extractor (and its fallback) failed on this episode.
                # Outcome: the old facts stay; the episode is retried on the next run.
                rep.episodes_failed += 1
                store.bump("extraction_errors")
                continue
            if out.error:
                rep.episodes_failed += 1
                store.bump("extraction_errors")
            old = [int(x[0]) for x in conn.execute(
                "select fact_id from supports where episode_id = ? and extractor != ?",
                (eid, USER))]
            conn.execute("delete from supports where episode_id = ? and extractor != ?",
                         (eid, USER))
            trust = r.episode_trust(source_kind, draft.role)
            # What this episode said before, by wording: said again, it keeps its fact (and the
            # fact its history), even when that fact is superseded by now.
            before = {h: fid for fid, h in conn.execute(
                f"select id, content_hash from facts where id in ({','.join('?' * len(old))})",
                old)} if old else {}
            for f in fl:
                h = fact_hash(f.text)
                vec = fact_vecs.get(h)
                if h in before:
                    r.add_support(conn, before[h], eid, out.extractor, f.confidence, now)
                    rep.facts_merged += 1
                    _relabel(conn, before[h], f, out.extractor, vec, now)
                    continue
                res = resolve(conn, f, episode_id=eid, episode_time=draft.occurred_at,
                              extractor=out.extractor, trust=trust, now=now,
                              quarantine=quarantined or draft.role == "third_party")
                if res.action in ("add", "supersede"):
                    if vec is not None:
                        vectors.put(conn, "facts", [res.fact_id], vec[None, :])
                    rep.facts_added += 1
                    rep.facts_superseded += len(res.superseded)
                else:
                    rep.facts_merged += res.action == "merge"
                    _relabel(conn, res.fact_id, f, out.extractor, vec, now)
            _retract_orphans(conn, old, rep, now)
            rep.episodes_done += 1


def _relabel(conn: Any, fact_id: int, f: Any, made_by: str, vec: np.ndarray | None,
             now: str) -> None:
    """The new extractor said an existing extracted fact again: it takes the new labels, and
    the new wording too once no older extractor's support is left on it."""
    row = conn.execute("select origin, text from facts where id = ?", (fact_id,)).fetchone()
    if row is None or row[0] != "extracted":
        return
    others = conn.execute(
        "select count(*) from supports where fact_id = ? and extractor not in (?, ?)",
        (fact_id, made_by, USER)).fetchone()[0]
    if others or row[1] == f.text:
        conn.execute("update facts set kind = ?, subject = ?, attribute = ?, value = ?,"
                     " updated_at = ? where id = ?",
                     (f.kind, f.subject, f.attribute, f.value, now, fact_id))
        return
    conn.execute(
        "update facts set text = ?, content_hash = ?, kind = ?, subject = ?, attribute = ?,"
        " value = ?, valid_from = coalesce(?, valid_from), updated_at = ? where id = ?",
        (f.text, fact_hash(f.text), f.kind, f.subject, f.attribute, f.value, f.valid_from, now,
         fact_id))
    if vec is not None:
        vectors.put(conn, "facts", [fact_id], vec[None, :])


def _retract_orphans(conn: Any, fact_ids: list[int], rep: ReextractReport, now: str) -> None:
    """Delete the facts among `fact_ids` that nothing supports any more, putting back what
    they had superseded (unless a current fact supersedes it again); refresh the others."""
    if not fact_ids:
        return
    marks = ",".join("?" * len(fact_ids))
    orphans = [int(x[0]) for x in conn.execute(
        f"select id from facts where id in ({marks}) and origin != 'typed' and not exists"
        " (select 1 from supports s where s.fact_id = facts.id)", fact_ids)]
    if orphans:
        om = ",".join("?" * len(orphans))
        restored = conn.execute(
            f"select id, subject, attribute from facts where superseded_by in ({om})"
            f" and status = 'superseded' and id not in ({om})", (*orphans, *orphans)).fetchall()
        conn.execute(
            f"update facts set status = 'active', superseded_by = null, valid_to = null,"
            f" updated_at = ? where superseded_by in ({om}) and status = 'superseded'"
            f" and id not in ({om})", (now, *orphans, *orphans))
        r.delete_facts(conn, orphans)
        rep.facts_retracted += len(orphans)
        for subject, attribute in {(x[1], x[2]) for x in restored if x[1] and x[2]}:
            settle(conn, subject, attribute, now)
        rep.facts_restored += sum(1 for x in restored if conn.execute(
            "select status from facts where id = ?", (x[0],)).fetchone()[0] == "active")
    r.refresh_trust(conn, [f for f in fact_ids if f not in set(orphans)])


def _episode_vectors(conn: Any, ids: list[int]) -> np.ndarray | None:
    """The stored float32 vectors of these episodes, in order; None if any is missing."""
    if not ids or vectors.model_row(conn) is None:
        return None
    marks = ",".join("?" * len(ids))
    got = {int(i): blob for i, blob in conn.execute(
        f"select id, embedding from episodes_emb where id in ({marks})", ids)}
    if len(got) != len(ids):
        return None
    return np.stack([np.frombuffer(got[i], dtype=np.float32) for i in ids])
