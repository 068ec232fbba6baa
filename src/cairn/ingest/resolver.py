"""The resolver: each new fact against the store's facts → ADD, MERGE, SUPERSEDE or NOOP.

- MERGE: the same fact again, by its normalised text, or by the same subject, attribute and
  value ("Ana lives in Lisbon" and "Ana has lived in Lisbon since 2019"): the episode becomes
  one more support and the fact's trust rises.
- NOOP: the episode already supports that fact (a rescan).
- SUPERSEDE: same subject and attribute, another value, stated later: the old fact's validity
  is closed (`valid_to`), it points to the new one (`superseded_by`) and loses some trust. A
  statement that arrives late (an old chat imported after a newer note) is stored as history,
  already superseded by the newer one.
- ADD: anything else.

"Later" is when the statements were made (the newest episode behind each fact), not the dates
they mention: "I have lived in Marseille for ten years" said today beats "I live in Lyon" said
last year, although its valid_from is older. Equal times fall back to the dates mentioned, then
to trust. Deterministic: the same facts in the same order always give the same store.
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


def _stated(conn: Any, fact_id: int, fallback: str) -> str:
    """When a fact was last said: the newest time among the episodes that support it."""
    row = conn.execute(
        "select max(e.occurred_at) from supports s join episodes e on e.id = s.episode_id"
        " where s.fact_id = ?", (fact_id,)).fetchone()
    return str(row[0]) if row and row[0] else fallback


def _support(conn: Any, fact_id: int, *, episode_id: int, extractor: str, confidence: float,
             now: str, quarantine: bool, pinned: bool) -> Resolution:
    added = r.add_support(conn, fact_id, episode_id, extractor, confidence, now)
    if pinned:
        conn.execute("update facts set pinned = 1 where id = ?", (fact_id,))
    if not added:
        return Resolution("noop", fact_id)
    if not quarantine:
        # A trusted, clean support lifts a fact out of quarantine.
        conn.execute("update facts set status = 'active', updated_at = ? where id = ?"
                     " and status = 'quarantined'", (now, fact_id))
    r.refresh_trust(conn, [fact_id])
    conn.execute("update facts set updated_at = ? where id = ?", (now, fact_id))
    return Resolution("merge", fact_id)


def resolve(conn: Any, draft: FactDraft, *, episode_id: int, episode_time: str | None,
            extractor: str, trust: float, now: str, origin: str = "extracted",
            quarantine: bool = False, project: str | None = None, tags: tuple[str, ...] = (),
            pinned: bool = False) -> Resolution:
    """Store one fact draft supported by one episode (inside the caller's transaction)."""
    chash = fact_hash(draft.text)
    support = {"episode_id": episode_id, "extractor": extractor,
               "confidence": draft.confidence, "now": now, "quarantine": quarantine,
               "pinned": pinned}
    existing = r.fact_by_hash(conn, chash, project)
    if existing is not None:
        return _support(conn, existing, **support)  # type: ignore[arg-type]

    stated = episode_time or now
    when = draft.valid_from or stated
    status = "quarantined" if quarantine else "active"
    winner: dict[str, Any] | None = None  # a fact stated later that this one is history for
    losers: list[tuple[dict[str, Any], str]] = []
    keyed = bool(draft.subject and draft.attribute and draft.value)
    if keyed and not quarantine:
        value = normalise(draft.value or "")
        same: list[dict[str, Any]] = []
        for old in r.facts_on(conn, str(draft.subject), str(draft.attribute)):
            if old["value"] is None:
                continue
            if normalise(old["value"]) == value:
                same.append(old)
                continue
            old_stated = _stated(conn, int(old["id"]), old["recorded_at"])
            old_when = old["valid_from"] or old_stated
            newer = (stated, when, trust) >= (old_stated, old_when, float(old["trust"]))
            if newer:
                # The old fact stopped being true when the new one started, if that is later
                # than the old one's start; else (a date that says less) when it was said.
                end = when if when > old_when else stated
                losers.append((old, end))
            elif winner is None or old_stated > winner["stated"]:
                winner = {**old, "stated": old_stated, "when": old_when}
        if same and winner is None:
            # Same subject, attribute and value: the same fact in other words.
            target = min(same, key=lambda o: int(o["id"]))
            if project is None or conn.execute(
                    "select project is ? or project = ? from facts where id = ?",
                    (project, project, target["id"])).fetchone()[0]:
                return _support(conn, int(target["id"]), **support)  # type: ignore[arg-type]
    valid_to = None
    superseded_by = None
    if winner is not None:
        losers = []  # history: what the winner replaced is not this one's to replace
        status = "superseded"
        superseded_by = int(winner["id"])
        valid_to = winner["when"] if winner["when"] > when else winner["stated"]
    # Said at a time with no date of its own: true from when it was said, as far as we know.
    fid = r.insert_fact(conn, replace(draft, valid_from=draft.valid_from or episode_time),
                        chash=chash, trust=trust, now=now, origin=origin, status=status,
                        project=project, tags=tags, pinned=pinned, valid_to=valid_to,
                        superseded_by=superseded_by)
    r.add_support(conn, fid, episode_id, extractor, draft.confidence, now)
    if origin != "typed":
        r.refresh_trust(conn, [fid])
    for old, end in losers:
        conn.execute(
            "update facts set status = 'superseded', superseded_by = ?, valid_to = ?,"
            " trust = max(0.05, trust * 0.8), updated_at = ? where id = ?",
            (fid, end, now, old["id"]))
    if losers:
        return Resolution("supersede", fid, tuple(int(o["id"]) for o, _ in losers))
    return Resolution("add", fid)


def settle(conn: Any, subject: str, attribute: str, now: str) -> list[int]:
    """Make one (subject, attribute) consistent again: the fact stated last stays current,
    facts with its value stay with it, the others are superseded by it. Returns the ids it
    superseded. Used when a fact comes back (the fact that had replaced it was retracted)."""
    facts = [f for f in r.facts_on(conn, subject, attribute) if f["value"] is not None]
    if len(facts) < 2:
        return []
    keyed = []
    for f in facts:
        stated = _stated(conn, int(f["id"]), f["recorded_at"])
        keyed.append(((stated, f["valid_from"] or stated, float(f["trust"]), -int(f["id"])), f))
    keyed.sort(key=lambda x: x[0])
    (top_stated, top_when, _, _), top = keyed[-1]
    value = normalise(top["value"])
    done = []
    for (_stated_at, when, _, _), f in keyed[:-1]:
        if normalise(f["value"]) == value:
            continue
        end = top_when if top_when > when else top_stated
        conn.execute(
            "update facts set status = 'superseded', superseded_by = ?, valid_to = ?,"
            " trust = max(0.05, trust * 0.8), updated_at = ? where id = ?",
            (top["id"], end, now, f["id"]))
        done.append(int(f["id"]))
    return done
