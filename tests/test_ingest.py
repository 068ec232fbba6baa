"""cairn ingest: notes and chats become episodes; bad input gets one line; nothing stored is lost."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from conftest import cli_json, run_cli, write_chat

NOTE = """---
title: Trip planning
tags: [travel]
---
# Japan 2026

## Flights

We booked flights to Osaka for 12 April 2026.
The return is from Tokyo.

## Hotels

I prefer ryokans over business hotels.
"""


def test_note_sections_become_episodes_with_line_ranges(memory: Any, tmp_path: Path) -> None:
    note = tmp_path / "notes" / "japan.md"
    note.parent.mkdir()
    note.write_text(NOTE, encoding="utf-8")
    rep = memory.ingest([note.parent]).to_dict()
    assert rep["files_ingested"] == 1 and rep["episodes_added"] == 2
    rows = memory.store.conn.execute(
        "select locator, context, text from episodes order by id").fetchall()
    assert [r[0] for r in rows] == ["L9-L10", "L14-L14"]
    assert "Japan 2026" in rows[0][1] and "Flights" in rows[0][1]
    hits = memory.recall("where do we fly into in Japan").to_dict()["hits"]
    assert any(s["locator"] == "L9-L10" for h in hits[:3] for s in h["sources"])
    # facts with supports came out of the rules extractor
    assert memory.store.conn.execute("select count(*) from supports").fetchone()[0] >= 2


def test_ingest_is_idempotent_and_edits_remove_stale(memory: Any, tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("I work at Initech.\n\nMy cat is called Miso.\n", encoding="utf-8")
    first = memory.ingest([note]).to_dict()
    again = memory.ingest([note]).to_dict()
    assert first["episodes_added"] == 2
    assert again["files_unchanged"] == 1 and again["episodes_added"] == 0
    note.write_text("I work at Initech.\n", encoding="utf-8")  # the cat line is edited away
    edited = memory.ingest([note]).to_dict()
    assert edited["episodes_removed"] == 1 and edited["facts_retracted"] >= 1
    texts = [r[0] for r in memory.store.conn.execute("select text from facts")]
    assert not any("Miso" in t for t in texts)
    assert any("Initech" in t for t in texts)


def test_bad_input_one_line_each_and_nothing_lost(home: Path, tmp_path: Path) -> None:
    run_cli("remember", "The spare key is under the blue pot", home=home, check=True)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "binary.md").write_bytes(b"\x00\x01\x02PNG\x00" * 100)
    (bad / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (bad / "empty.md").write_text("")
    (bad / "cut.chat.jsonl").write_text('{"id": "1", "speaker": "A", "text": "hel')
    with open(bad / "huge.md", "wb") as fh:  # tens of MB, sparse on disk
        fh.truncate(30 * 1024 * 1024)
    (bad / "loop").symlink_to(bad, target_is_directory=True)
    (bad / "good.md").write_text("Our team offsite is in Lisbon in May.\n")
    proc = run_cli("ingest", str(bad), "--json", home=home)
    assert proc.returncode == 0, proc.stderr  # something was ingested
    assert "Traceback" not in proc.stderr
    rep = json.loads(proc.stdout)
    reasons = {Path(e["path"]).name: e["reason"] for e in rep["errors"] + rep["skipped"]}
    assert "binary" in reasons["binary.md"] or "NUL" in reasons["binary.md"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert "empty" in reasons["empty.md"]
    assert "JSON" in reasons["cut.chat.jsonl"] or "truncated" in reasons["cut.chat.jsonl"]
    assert "too large" in reasons["huge.md"]
    assert any("symlink loop" in r for r in reasons.values())
    assert rep["files_ingested"] == 1
    # human output: one line per bad file, naming it
    proc = run_cli("ingest", str(bad / "binary.md"), str(bad / "empty.md"), home=home)
    assert proc.returncode != 0  # nothing could be ingested
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and all(str(bad) in line for line in lines)
    data = cli_json("recall", "spare key", home=home)
    assert data["hits"][0]["text"] == "The spare key is under the blue pot"


def test_chat_jsonl_keeps_good_lines_and_reports_bad(memory: Any, tmp_path: Path) -> None:
    chat = write_chat(tmp_path / "c.chat.jsonl", [
        {"id": "m1", "speaker": "Ana", "role": "user", "time": "2026-01-02T10:00:00Z",
         "text": "I started learning the cello in January."},
        {"id": "m2", "speaker": "Bot", "role": "assistant", "time": "2026-01-02T10:01:00Z",
         "text": "That's great, the cello is a lovely instrument."},
    ])
    with open(chat, "a") as fh:
        fh.write("{not json}\n")
        fh.write(json.dumps({"id": "m3", "speaker": "Ana"}) + "\n")  # no text
    rep = memory.ingest([chat]).to_dict()
    assert rep["episodes_added"] == 2
    assert rep["records_skipped"] == 2
    roles = dict(memory.store.conn.execute("select locator, role from episodes"))
    assert roles == {"m1": "user", "m2": "assistant"}
    trust = dict(memory.store.conn.execute("select locator, trust from episodes"))
    assert trust["m1"] > trust["m2"]  # the user's turn is better evidence than the assistant's


def test_unreadable_file(memory: Any, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        return  # root reads everything; the permission path cannot be exercised
    f = tmp_path / "secret.md"
    f.write_text("x")
    f.chmod(0)
    rep = memory.ingest([f]).to_dict()
    assert rep["errors"][0]["reason"].startswith("cannot read")
