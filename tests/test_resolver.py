"""The resolver: ADD, MERGE, SUPERSEDE, NOOP, deterministic, ordered by when things were said."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn.ingest.resolver import resolve, settle
from cairn.models import EpisodeDraft, FactDraft
from cairn.store import Store
from cairn.store import records as r

NOW = "2026-06-01T00:00:00Z"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "cairn.db")
    yield s
    s.close()


class World:
    """Episodes in one chat source, and facts resolved against them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn
        with store.transaction():
            self.source = r.upsert_source(self.conn, "/chat.jsonl", "chat", NOW)
        self.n = 0

    def say(self, when: str, draft: FactDraft, *, role: str = "user",
            quarantine: bool = False) -> Any:
        self.n += 1
        with self.store.transaction():
            eid = r.insert_episode(self.conn, self.source, EpisodeDraft(
                text=draft.text, locator=f"m{self.n}", speaker="Dana", role=role,  # type: ignore[arg-type]
                occurred_at=when), f"h{self.n}", 0.75, quarantine, NOW)
            return resolve(self.conn, draft, episode_id=eid, episode_time=when,
                           extractor="rules@2", trust=0.75, now=NOW, quarantine=quarantine)

    def fact(self, fid: int) -> dict[str, Any]:
        cur = self.conn.execute("select * from facts where id = ?", (fid,))
        return dict(zip([c[0] for c in cur.description], cur.fetchone(), strict=True))

    def supports(self, fid: int) -> int:
        return int(self.conn.execute("select count(*) from supports where fact_id = ?",
                                     (fid,)).fetchone()[0])


def lives(city: str, text: str | None = None, valid_from: str | None = None) -> FactDraft:
    return FactDraft(text=text or f"Dana lives in {city}.", kind="biography", subject="Dana",
                     attribute="residence", value=city, valid_from=valid_from, confidence=0.7)


def test_add_then_merge_then_noop(store: Store) -> None:
    w = World(store)
    a = w.say("2024-01-01T10:00:00Z", lives("Porto"))
    assert a.action == "add"
    trust = w.fact(a.fact_id)["trust"]
    b = w.say("2024-02-01T10:00:00Z", lives("Porto", "dana lives in porto"))  # same words
    assert (b.action, b.fact_id) == ("merge", a.fact_id)
    assert w.supports(a.fact_id) == 2 and w.fact(a.fact_id)["trust"] > trust
    with store.transaction():  # the same episode again (a rescan): nothing changes
        again = resolve(w.conn, lives("Porto"), episode_id=1, episode_time="2024-01-01T10:00:00Z",
                        extractor="rules@2", trust=0.75, now=NOW)
    assert (again.action, again.fact_id) == ("noop", a.fact_id)


def test_same_subject_attribute_value_in_other_words_merges(store: Store) -> None:
    w = World(store)
    a = w.say("2024-01-01T10:00:00Z", lives("Porto"))
    b = w.say("2024-03-01T10:00:00Z", lives("Porto", "Dana has lived in Porto since 2019.", "2019"))
    assert (b.action, b.fact_id) == ("merge", a.fact_id)
    assert w.conn.execute("select count(*) from facts").fetchone()[0] == 1


def test_a_new_value_said_later_supersedes_and_keeps_history(store: Store) -> None:
    w = World(store)
    a = w.say("2024-03-01T10:00:00Z", lives("Porto"))
    b = w.say("2025-09-01T10:00:00Z", lives("Berlin", valid_from="2025-08"))
    assert (b.action, b.superseded) == ("supersede", (a.fact_id,))
    old = w.fact(a.fact_id)
    assert (old["status"], old["superseded_by"], old["valid_to"]) == (
        "superseded", b.fact_id, "2025-08")
    assert w.fact(b.fact_id)["status"] == "active"
    assert old["trust"] < 0.75


def test_said_later_wins_even_with_an_older_start_date(store: Store) -> None:
    w = World(store)
    a = w.say("2024-03-01T10:00:00Z", lives("Lyon"))
    b = w.say("2025-03-01T10:00:00Z", lives("Marseille", "Dana has lived in Marseille for ten"
                                           " years.", valid_from="2015"))
    assert b.action == "supersede" and w.fact(a.fact_id)["status"] == "superseded"
    assert w.fact(a.fact_id)["valid_to"] == "2025-03-01T10:00:00Z"  # not before it began


def test_an_older_statement_arriving_late_is_history(store: Store) -> None:
    w = World(store)
    new = w.say("2025-09-01T10:00:00Z", lives("Berlin"))
    late = w.say("2024-03-01T10:00:00Z", lives("Porto"))
    assert late.action == "add"
    f = w.fact(late.fact_id)
    assert (f["status"], f["superseded_by"]) == ("superseded", new.fact_id)
    assert w.fact(new.fact_id)["status"] == "active"


def test_quarantined_facts_never_supersede(store: Store) -> None:
    w = World(store)
    a = w.say("2024-03-01T10:00:00Z", lives("Porto"))
    q = w.say("2025-03-01T10:00:00Z", lives("Nowhere"), quarantine=True)
    assert q.action == "add" and w.fact(q.fact_id)["status"] == "quarantined"
    assert w.fact(a.fact_id)["status"] == "active"


def test_resolution_is_deterministic(tmp_path: Path) -> None:
    def run(path: Path) -> list[tuple[Any, ...]]:
        s = Store.open(path)
        w = World(s)
        for when, city in [("2024-01-01T00:00:00Z", "Porto"), ("2024-06-01T00:00:00Z", "Braga"),
                           ("2024-03-01T00:00:00Z", "Faro"), ("2024-06-01T00:00:00Z", "Braga")]:
            w.say(when, lives(city))
        rows = s.conn.execute("select id, value, status, superseded_by, valid_to from facts"
                              " order by id").fetchall()
        s.close()
        return [tuple(x) for x in rows]

    first, second = run(tmp_path / "a.db"), run(tmp_path / "b.db")
    assert first == second
    assert [(v, st) for _, v, st, _, _ in first] == [
        ("Porto", "superseded"), ("Braga", "active"), ("Faro", "superseded")]


def test_settle_makes_the_last_said_current(store: Store) -> None:
    w = World(store)
    a = w.say("2024-01-01T10:00:00Z", lives("Porto"))
    b = w.say("2025-01-01T10:00:00Z", lives("Braga"))
    with store.transaction():  # as if Braga's replacement had been retracted: both active
        w.conn.execute("update facts set status = 'active', superseded_by = null,"
                       " valid_to = null")
        done = settle(w.conn, "Dana", "residence", NOW)
    assert done == [a.fact_id]
    assert w.fact(a.fact_id)["superseded_by"] == b.fact_id
