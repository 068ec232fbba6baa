"""The resolver: each new fact against the store's facts → ADD, MERGE, SUPERSEDE or NOOP.

Deterministic: the same facts in the same order always give the same store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from cairn.models import FactDraft
from cairn.store import content_hash
from cairn.store import records as r

Action = Literal["add", "merge", "supersede", "noop"]

_NORM = re.compile(r"[^\w]+", re.UNICODE)


def normalise(text: str) -> str:
    return _NORM.sub(" ", text.lower()).strip()


def fact_hash(text: str) -> str:
    return content_hash(normalise(text))


@dataclass(frozen=True)
class Resolution:
    action: Action
    fact_id: int
    superseded: tuple[int, ...] = ()


def resolve(conn: Any, draft: FactDraft, *, episode_id: int, episode_time: str | None,
            extractor: str, trust: float, now: str, origin: str = "extracted",
            quarantine: bool = False, project: str | None = None, tags: tuple[str, ...] = (),
            pinned: bool = False) -> Resolution:
    """Store one fact draft supported by one episode (inside the caller's transaction)."""
    chash = fact_hash(draft.text)
    existing = r.fact_by_hash(conn, chash, project)
    if existing is not None:
        added = r.add_support(conn, existing, episode_id, extractor, draft.confidence, now)
        if pinned:
            conn.execute("update facts set pinned = 1 where id = ?", (existing,))
        if added:
            if not quarantine:
                # A trusted, clean support lifts a fact out of quarantine.
                conn.execute(
                    "update facts set status = 'active', updated_at = ? where id = ?"
                    " and status = 'quarantined'", (now, existing))
            r.refresh_trust(conn, [existing])
            conn.execute("update facts set updated_at = ? where id = ?", (now, existing))
            return Resolution("merge", existing)
        return Resolution("noop", existing)

    when = draft.valid_from or episode_time or now
    status = "quarantined" if quarantine else "active"
    loser_of: int | None = None
    losers: list[dict[str, Any]] = []
    if draft.subject and draft.attribute and draft.value and not quarantine:
        for old in r.facts_on(conn, draft.subject, draft.attribute):
            if old["value"] is None or normalise(old["value"]) == normalise(draft.value):
                continue
            old_when = old["valid_from"] or old["recorded_at"]
            if when > old_when or (when == old_when and trust >= old["trust"]):
                losers.append(old)
            elif loser_of is None:
                loser_of = int(old["id"])  # an older statement arrived late: it is history
    valid_to = None
    if loser_of is not None:
        status = "superseded"
        row = conn.execute("select valid_from, recorded_at from facts where id = ?",
                           (loser_of,)).fetchone()
        valid_to = row[0] or row[1]
    # Said at a time with no date of its own: true from when it was said, as far as we know.
    fid = r.insert_fact(conn, replace(draft, valid_from=draft.valid_from or episode_time), chash=chash, trust=trust, now=now, origin=origin,
                        status=status, project=project, tags=tags, pinned=pinned,
                        valid_to=valid_to, superseded_by=loser_of)
    r.add_support(conn, fid, episode_id, extractor, draft.confidence, now)
    if origin != "typed":
        r.refresh_trust(conn, [fid])
    for old in losers:
        conn.execute(
            "update facts set status = 'superseded', superseded_by = ?, valid_to = ?,"
            " trust = max(0.05, trust * 0.8), updated_at = ? where id = ?",
            (fid, when, now, old["id"]))
    if losers:
        return Resolution("supersede", fid, tuple(int(o["id"]) for o in losers))
    return Resolution("add", fid)
