"""Hybrid recall: provenance, --as-of, -n, --explain, reinforcement, supersede keeps history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cairn.errors import BadInput
from conftest import cli_json, run_cli, write_chat


def test_remember_then_recall_with_provenance(memory: Any) -> None:
    out = memory.remember("I moved to Lisbon in June 2026", tags=["home"])
    assert out["id"].startswith("f") and out["action"] == "added"
    memory.remember("My dentist appointment is on Friday")
    res = memory.recall("where do I live?").to_dict()
    top = res["hits"][0]
    assert top["id"] == out["id"]
    assert top["text"] == "I moved to Lisbon in June 2026"
    assert top["sources"][0]["kind"] == "cli" and top["sources"][0]["uri"] == "cli:"
    assert set(top) >= {"id", "kind", "text", "score", "trust", "status", "valid_from",
                        "valid_to", "recorded_at", "sources"}


def test_chat_locator_is_the_message_id_as_given(memory: Any, tmp_path: Path) -> None:
    chat = write_chat(tmp_path / "team.chat.jsonl", [
        {"conversation": "c1", "id": "msg-0007/a", "speaker": "Ana", "role": "user",
         "time": "2026-05-08T13:56:00Z", "text": "The staging database password rotates every Tuesday."},
        {"conversation": "c1", "id": "42", "speaker": "Ben", "role": "user",
         "time": "2026-05-08T13:57:00Z", "text": "Thanks, I'll add a reminder for the rotation."},
    ])
    rep = memory.ingest([chat]).to_dict()
    assert rep["episodes_added"] == 2
    hits = memory.recall("when does the staging password rotate").to_dict()["hits"]
    src = hits[0]["sources"][0]
    assert src["locator"] == "msg-0007/a"
    assert src["speaker"] == "Ana" and src["kind"] == "chat"
    assert src["uri"] == str(chat.resolve())
    assert src["occurred_at"] == "2026-05-08T13:56:00Z"


def test_limit_and_explain(memory: Any) -> None:
    for i in range(15):
        memory.remember(f"Project Falcon milestone {i} shipped on time")
    res = memory.recall("Falcon milestone", limit=5, explain=True).to_dict()
    assert len(res["hits"]) == 5
    parts = res["hits"][0]["explain"]
    assert {"rrf", "trust_factor", "final"} <= set(parts)
    assert "fts_rank" in parts or "vec_rank" in parts
    scores = [h["score"] for h in res["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_supersede_keeps_history_and_as_of(memory: Any, tmp_path: Path) -> None:
    chat = write_chat(tmp_path / "me.chat.jsonl", [
        {"id": "a1", "speaker": "Dana", "role": "user", "time": "2024-03-01T10:00:00Z",
         "text": "I live in Porto now."},
        {"id": "a2", "speaker": "Dana", "role": "user", "time": "2025-09-01T10:00:00Z",
         "text": "I live in Berlin now."},
    ])
    rep = memory.ingest([chat]).to_dict()
    assert rep["facts_superseded"] == 1
    now = [h for h in memory.recall("where does Dana live").hits if h.kind == "fact"]
    assert "Berlin" in now[0].text
    assert all("Porto" not in h.text for h in now)  # superseded: not current
    then = [h for h in memory.recall("where does Dana live", as_of="2024-12-31").hits
            if h.kind == "fact"]
    assert "Porto" in then[0].text
    assert then[0].valid_to is not None  # history kept, with the date it stopped being true


def test_recall_reinforces(memory: Any) -> None:
    fid = int(memory.remember("The wifi password at the cabin is on the fridge")["id"][1:])
    memory.recall("cabin wifi")
    memory.recall("cabin wifi")
    row = memory.store.conn.execute(
        "select recall_count, last_recalled_at from facts where id = ?", (fid,)).fetchone()
    assert row[0] == 2 and row[1] is not None


def test_bad_queries(memory: Any) -> None:
    with pytest.raises(BadInput):
        memory.recall("   ")
    with pytest.raises(BadInput):
        memory.recall("x", as_of="not a date")
    assert memory.recall("anything at all").hits == []  # empty store: no error


def test_cli_recall_json_shape(home: Path) -> None:
    run_cli("remember", "My manager is Priya Shah", home=home, check=True)
    data = cli_json("recall", "who is my manager", "-n", "3", home=home)
    assert set(data) == {"query", "hits"}
    assert data["hits"][0]["text"] == "My manager is Priya Shah"
    assert data["hits"][0]["sources"][0]["kind"] == "cli"
    # the standalone commands are the same verbs
    proc = run_cli("who is my manager", "--json", home=home, exe="recall", check=True)
    assert '"My manager is Priya Shah"' in proc.stdout


def test_cli_errors_are_one_line(home: Path) -> None:
    proc = run_cli("recall", "x", "--as-of", "yesterday-ish", home=home)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("Error:") and len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("forget", "zz9", home=home)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    proc = run_cli("forget", "f999", home=home)
    assert proc.returncode != 0 and "no memory with id f999" in proc.stderr


def test_a_repeated_query_is_embedded_once(memory: Any) -> None:
    """Paging (offset=10, 20, ...) and asking again reuse the query's vector, and the answer."""
    memory.remember("The cabin key hangs behind the kitchen door")
    real = memory.embedder
    calls: list[int] = []

    class Counting:  # the real embedder, counted
        model_id, dimensions = real.model_id, real.dimensions

        def embed(self, texts: Any) -> Any:
            calls.append(len(texts))
            return real.embed(texts)

    memory._embedder = Counting()
    first = memory.recall("where is the cabin key", reinforce=False)
    again = memory.recall("where is the cabin key", reinforce=False)
    other = memory.recall("kitchen door", reinforce=False)
    assert calls == [1, 1]  # two different queries, one embedding each
    assert [h.id for h in again.hits] == [h.id for h in first.hits]
    assert [h.score for h in again.hits] == [h.score for h in first.hits]
    assert other.hits and first.hits[0].text.startswith("The cabin key")
