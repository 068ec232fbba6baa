"""Forget is a hard delete from every table, index and vector table, then a tombstone.

The canary test scans the store's bytes (database, WAL, shared memory) for the forgotten text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import cli_json, run_cli, write_chat

CANARY = "zebracanary"


def store_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.glob("cairn.db*")) if p.is_file())


def count(memory: Any, sql: str) -> int:
    return int(memory.store.conn.execute(sql).fetchone()[0])


def test_forget_by_id_leaves_no_trace(memory: Any, home: Path) -> None:
    memory.remember("The spare key is under the blue pot")
    fid = memory.remember(f"My bank PIN hint is {CANARY} twelve")["id"]
    assert CANARY.encode() in store_bytes(home)
    plan = memory.forget_plan([fid])
    out = memory.forget_apply(plan)
    assert out["facts"] == 1 and out["episodes"] == 1
    for table in ("facts", "episodes", "facts_fts", "episodes_fts"):
        n = count(memory, f"select count(*) from {table} where text like '%{CANARY}%'") \
            if not table.endswith("fts") else \
            count(memory, f"select count(*) from {table} where {table} match '{CANARY}'")
        assert n == 0, table
    assert count(memory, "select count(*) from facts_vec") == count(memory, "select count(*) from facts")
    assert count(memory, "select count(*) from episodes_emb") == \
        count(memory, "select count(*) from episodes where searchable")
    memory.close()
    assert CANARY.encode() not in store_bytes(home)
    # the rest is still there
    from cairn.config import load_settings
    from cairn.service import Memory

    with Memory(load_settings()) as m:
        assert m.recall("spare key").hits[0].text == "The spare key is under the blue pot"


def test_forget_source_tombstones_it(memory: Any, home: Path, tmp_path: Path) -> None:
    chat = write_chat(tmp_path / "x.chat.jsonl", [
        {"id": "1", "speaker": "Ana", "text": f"The vault code word is {CANARY} for sure."},
        {"id": "2", "speaker": "Ana", "text": "Lunch is at noon on Fridays."},
    ])
    memory.ingest([chat])
    plan = memory.forget_plan(source=chat)
    assert len(plan.episodes) == 2 and len(plan.sources) == 1
    memory.forget_apply(plan)
    rep = memory.ingest([chat]).to_dict()  # a rescan must not bring it back
    assert rep["files_skipped"] == 1 and rep["episodes_added"] == 0
    assert count(memory, "select count(*) from episodes") == 0
    memory.close()
    assert CANARY.encode() not in store_bytes(home)


def test_forgotten_content_stays_forgotten_when_seen_elsewhere(memory: Any, tmp_path: Path) -> None:
    note = tmp_path / "a.md"
    note.write_text(f"My locker combination is {CANARY} 4-8-15.\n\nI like green tea.\n")
    memory.ingest([note])
    hits = memory.recall("locker combination").hits
    memory.forget_apply(memory.forget_plan([hits[0].id]))
    copy = tmp_path / "b.md"  # the same paragraph in another file
    copy.write_text(note.read_text())
    memory.ingest([copy])
    assert count(memory, f"select count(*) from episodes where text like '%{CANARY}%'") == 0
    assert count(memory, "select count(*) from episodes where text like '%green tea%'") == 2


def test_cli_forget_query_needs_confirmation(home: Path) -> None:
    run_cli("remember", f"Old wifi password was {CANARY}", home=home, check=True)
    run_cli("remember", "The cat's vet is Dr. Moreau", home=home, check=True)
    proc = run_cli("forget", "--query", "wifi password", "-n", "1", home=home)
    assert proc.returncode != 0 and "--yes" in proc.stderr  # no TTY to confirm on
    proc = run_cli("forget", "--query", "wifi password", "-n", "1", "--yes", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["deleted"]["facts"] == 1
    assert CANARY.encode() not in store_bytes(home)
    assert cli_json("stats", home=home)["facts"] == 1
    proc = run_cli("f1", home=home, exe="forget")  # the standalone verb, by id
    assert proc.returncode in (0, 1)


@pytest.mark.parametrize("bad", ["", "12", "x1", "f"])
def test_bad_ids(memory: Any, bad: str) -> None:
    from cairn.errors import CairnError

    with pytest.raises(CairnError):
        memory.forget_plan([bad])


def test_forgotten_ids_are_never_reused(memory: Any) -> None:
    first = memory.remember("The spare bike lock code is with Jonas")
    memory.forget_apply(memory.forget_plan([first["id"]]))
    second = memory.remember("The boat club meets on Thursdays")
    assert second["id"] != first["id"]
    # and the episodes' ids move on too
    eps = [r[0] for r in memory.store.conn.execute("select id from episodes")]
    assert eps and min(eps) > 1
