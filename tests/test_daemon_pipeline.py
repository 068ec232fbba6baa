"""What the daemon asks of the pipeline: deletes retract, renames keep identity, growing session
logs are read incrementally, and a reconciliation scan catches up on what changed while it
was down (run in-process with `--once`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cairn.config import load_settings
from cairn.daemon.lifecycle import Daemon


def _facts(m: Any) -> dict[str, int]:
    """fact text -> number of supports."""
    return {r[0]: r[1] for r in m.store.conn.execute(
        "select f.text, count(s.episode_id) from facts f left join supports s on s.fact_id = f.id"
        " group by f.id")}


def _episode_ids(m: Any, path: Path) -> list[int]:
    return [r[0] for r in m.store.conn.execute(
        "select e.id from episodes e join sources s on s.id = e.source_id where s.uri = ?"
        " order by e.id", (str(path.resolve()),))]


def _recall_texts(m: Any, query: str) -> list[str]:
    return [h.text for h in m.recall(query, limit=5, reinforce=False).hits]


def test_deleted_file_retracts_only_what_it_alone_supported(memory: Any, tmp_path: Path) -> None:
    a = tmp_path / "a.md"
    b = tmp_path / "b.md"
    a.write_text("I moved to Lisbon in June 2024.\n\nMy favourite tea is oolong.\n")
    b.write_text("I moved to Lisbon in June 2024.\n")
    memory.ingest([a, b])
    before = _facts(memory)
    assert any("oolong" in t for t in before)
    lisbon = next(t for t in before if "Lisbon" in t)
    assert before[lisbon] == 2
    a.unlink()
    res = memory.ingestor.source_deleted(a)
    assert res.status == "deleted" and res.episodes_removed == 2 and res.facts_retracted >= 1
    after = _facts(memory)
    assert not any("oolong" in t for t in after)
    assert after[lisbon] == 1  # b.md still supports it
    row = memory.store.conn.execute("select status from sources where uri = ?",
                                    (str(a.resolve()),)).fetchone()
    assert row[0] == "deleted"
    # It comes back: read again in full, live again.
    a.write_text("My favourite tea is oolong.\n")
    res = memory.ingestor.ingest_watched(a)
    assert res is not None and res.status == "ingested" and res.episodes_added == 1
    assert memory.store.conn.execute("select status from sources where uri = ?",
                                     (str(a.resolve()),)).fetchone()[0] == "live"


def test_rename_keeps_episode_and_fact_ids(memory: Any, tmp_path: Path) -> None:
    a = tmp_path / "a.md"
    a.write_text("My favourite tea is oolong.\n")
    memory.ingest([a])
    ids = _episode_ids(memory, a)
    facts = memory.store.conn.execute("select id from facts order by id").fetchall()
    b = tmp_path / "b.md"
    a.rename(b)
    assert memory.ingestor.source_moved(a, b)
    res = memory.ingestor.ingest_watched(b)
    assert res is not None and res.status == "unchanged"
    assert _episode_ids(memory, b) == ids
    assert memory.store.conn.execute("select id from facts order by id").fetchall() == facts
    assert not memory.ingestor.source_moved(a, b)  # nothing left to move


def test_watched_file_with_same_stat_is_not_read(memory: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    a = tmp_path / "a.md"
    a.write_text("My favourite tea is oolong.\n")
    assert memory.ingestor.ingest_watched(a).status == "ingested"
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read an unchanged file"))
    assert memory.ingestor.ingest_watched(a).status == "unchanged"
    monkeypatch.undo()
    os.utime(a, (1_700_000_000, 1_700_000_000))  # touched, same bytes
    assert memory.ingestor.ingest_watched(a).status == "unchanged"
    row = memory.store.conn.execute("select mtime from sources").fetchone()
    assert row[0] == 1_700_000_000  # the next scan skips it unread


def _claude_line(uuid: str, role: str, text: str, minute: int) -> str:
    return json.dumps({
        "parentUuid": None, "isSidechain": False, "userType": "external",
        "cwd": "/home/ana/code/garden", "sessionId": "s-1", "version": "2.0.31", "type": role,
        "uuid": uuid, "timestamp": f"2026-05-08T10:{minute:02d}:00.000Z",
        "message": {"role": role, "content": text if role == "user" else
                    [{"type": "text", "text": text}]}}) + "\n"


def test_growing_session_log_is_read_from_where_it_stopped(memory: Any, tmp_path: Path) -> None:
    log = tmp_path / ".claude" / "projects" / "garden" / "s-1.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text(_claude_line("u-1", "user", "We deploy the garden app with Fly.io.", 1))
    res = memory.ingestor.ingest_watched(log)
    assert res.status == "ingested" and res.episodes_added == 1
    first = memory.store.conn.execute("select read_offset from sources").fetchone()[0]
    assert first == log.stat().st_size
    half = _claude_line("u-2", "user", "My staging region is Madrid.", 2)
    with open(log, "a") as fh:
        fh.write(half[:40])  # the agent is mid-write
    res = memory.ingestor.ingest_watched(log)
    assert res.episodes_added == 0
    with open(log, "a") as fh:
        fh.write(half[40:])
    res = memory.ingestor.ingest_watched(log)
    assert res.status == "ingested" and res.episodes_added == 1 and res.episodes_removed == 0
    assert memory.store.conn.execute("select count(*) from episodes").fetchone()[0] == 2
    # Rewritten from scratch (not an append): read again in full, the vanished line goes.
    log.write_text(_claude_line("u-9", "user", "The garden app uses Postgres.", 9))
    res = memory.ingestor.ingest_watched(log)
    assert res.episodes_added == 1 and res.episodes_removed == 2


def _daemon(home: Path, embedder: Any, **kw: Any) -> Daemon:
    from cairn.service import Memory

    settings = load_settings()
    return Daemon(settings, memory=Memory(settings, embedder=embedder), once=True,
                  install_signals=False, home=home, **kw)


def test_scan_catches_up_on_changes_made_while_stopped(home: Path, memory: Any,
                                                       tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'[sources]\nnotes = ["{notes}"]\n')
    (notes / "keep.md").write_text("My favourite tea is oolong.\n")
    (notes / "sub" / "move.md").write_text("I play the cello on Sundays.\n")
    (notes / "gone.md").write_text("My dentist is Maria Ramos.\n")
    (notes / "edit.md").write_text("My bike is a blue Brompton.\n\nI hate olives.\n")
    (notes / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)  # not a note
    d = _daemon(tmp_path, memory.embedder)
    assert d.run() == 0
    assert d.state.counts.ingested == 4 and d.state.counts.errors == 0
    cello = _episode_ids(memory, notes / "sub" / "move.md")

    # While the daemon is down: a rename, a delete, an edit, a new file.
    (notes / "sub" / "move.md").rename(notes / "moved.md")
    (notes / "gone.md").unlink()
    (notes / "edit.md").write_text("My bike is a blue Brompton.\n")
    (notes / "new.md").write_text("My sister Ana lives in Porto.\n")
    d = _daemon(tmp_path, memory.embedder)
    d.run()
    scan = d.state.last_scan
    assert scan is not None and scan["moved"] == 1 and scan["deleted"] == 1
    assert _episode_ids(memory, notes / "moved.md") == cello
    assert not any("Ramos" in t for t in _recall_texts(memory, "who is my dentist"))
    assert not any("olives" in t for t in _facts(memory))
    assert any("Porto" in t for t in _recall_texts(memory, "where does Ana live"))
    assert any("Brompton" in t for t in _recall_texts(memory, "what bike do I ride"))

    # Nothing changed: nothing is read (the image is only sniffed again: a new daemon does not
    # remember which files were not for it).
    d = _daemon(tmp_path, memory.embedder)
    d.run()
    assert d.state.last_scan is not None and d.state.last_scan["read"] <= 1
    assert d.state.counts.ingested == 0 and d.state.counts.unchanged == 0


def test_malformed_file_is_skipped_with_its_reason(home: Path, memory: Any,
                                                   tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'[sources]\nnotes = ["{notes}"]\n')
    (notes / "broken.chat.jsonl").write_text('{"conversation": "c1", "id": "m1", "te\n')
    (notes / "binary.md").write_bytes(b"\x00\x01\x02" * 100)
    (notes / "ok.md").write_text("My favourite tea is oolong.\n")
    d = _daemon(tmp_path, memory.embedder)
    d.run()
    assert d.state.counts.ingested == 1
    errors = {Path(e["path"]).name: e["reason"] for e in d.state.recent_errors}
    assert errors.get("broken.chat.jsonl")
    assert "binary.md" in errors


def test_scheduled_jobs_run_one_at_a_time_and_wait_for_ingest(home: Path, memory: Any,
                                                                tmp_path: Path) -> None:
    import time
    from datetime import datetime

    from cairn.daemon.scheduler import JobSpec, Scheduler

    ran: list[tuple[str, bool]] = []

    def probe(store: Any, *, now: datetime, should_yield: Any) -> dict[str, int]:
        ran.append((now.isoformat(), should_yield()))
        return {"checked": store.conn.execute("select count(*) from facts").fetchone()[0]}

    def broken(store: Any, *, now: datetime) -> None:
        raise RuntimeError("boom")

    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'[sources]\nnotes = ["{tmp_path}"]\n')
    d = _daemon(tmp_path, memory.embedder)
    d.scheduler = Scheduler([JobSpec("probe", probe, 0.005), JobSpec("broken", broken, 60)],
                            wake=d.wake)
    d.scheduler.start()  # APScheduler times "probe" every 0.3 s
    try:
        d.queue.closed(str(tmp_path / "a.md"), time.monotonic())  # ingest is waiting
        deadline = time.monotonic() + 10
        while not d.scheduler.pending():
            assert time.monotonic() < deadline, "APScheduler never fired"
            time.sleep(0.05)
        d._step()
        assert ran == []  # yields to the waiting event
        d.queue.take_due(float("inf"))
        d._step()
        assert len(ran) == 1 and ran[0][1] is False
        d.scheduler.request("broken")
        while d.scheduler.pending():
            d._step()
    finally:
        d.scheduler.stop()
        d.memory.close()
    jobs = {j["name"]: j for j in d.scheduler.to_dict()}
    assert jobs["probe"]["runs"] >= 1 and jobs["probe"]["last_error"] is None
    assert jobs["broken"]["last_error"] == "RuntimeError: boom"
    rows = memory.store.conn.execute(
        "select job, finished_at is not null, counts, error from job_runs order by id").fetchall()
    assert ("probe", 1, '{"checked": 0}', None) in rows
    assert ("broken", 1, "{}", "RuntimeError: boom") in rows
