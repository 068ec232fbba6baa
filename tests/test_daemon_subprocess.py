"""The real `cairn daemon run` as a subprocess on temp folders: write, edit, save atomically,
rename, delete, grow a session log, feed it a broken file; recall after each step; SIGTERM
stops it within 10 s; a second daemon is refused; kill -9 mid-ingest then restart loses
nothing and duplicates nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import BIN

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX signals")


def wait_until(fn: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    end = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or fn}")
        time.sleep(0.05)


class DaemonProc:
    def __init__(self, home: Path, env: dict[str, str], log: Path) -> None:
        self.home = home
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProc:
        self.start_nowait()
        assert self.proc is not None
        wait_until(lambda: (self.status().get("last_scan") or {}).get("complete")
                   and self.status().get("pid") == self.proc.pid, 30, "the first scan")
        return self

    def start_nowait(self) -> None:
        fh = open(self.log, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen([str(BIN / "cairn"), "daemon", "run"], env=self.env,
                                     stdout=fh, stderr=fh)
        fh.close()

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.home / "cairn.daemon.json").read_text())
        except (OSError, ValueError):
            return {}

    def idle(self) -> bool:
        st = self.status()
        return st.get("queue_length") == 0 and st.get("activity") == "idle"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=10)


@pytest.fixture
def setup(home: Path, tmp_path: Path) -> Iterator[tuple[DaemonProc, Path, Path, Any]]:
    from cairn.config import load_settings
    from cairn.service import Memory

    notes = tmp_path / "notes"
    sessions = tmp_path / "sessions" / "proj"
    notes.mkdir()
    sessions.mkdir(parents=True)
    home.mkdir(parents=True)
    (home / "config.toml").write_text(
        f'[sources]\nnotes = ["{notes}"]\nagent_sessions = ["{sessions.parent}"]\n'
        '[daemon]\ndebounce = 0.2\n')
    env = {**os.environ, "CAIRN_HOME": str(home), "HOME": str(tmp_path / "user"),
           "NO_COLOR": "1"}
    d = DaemonProc(home, env, tmp_path / "daemon.out")
    m = Memory(load_settings())
    yield d, notes, sessions, m
    m.close()
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def hits(m: Any, query: str) -> list[tuple[str, str, str]]:
    """(kind, text, uri) of what recall returns, read the way an agent would see it."""
    res = m.recall(query, limit=5, reinforce=False)
    return [(h.kind, h.text, h.sources[0].uri if h.sources else "") for h in res.hits]


def recalled(m: Any, query: str, word: str, path: Path | None = None) -> bool:
    return any(word in text and (path is None or uri == str(path))
               for _, text, uri in hits(m, query))


def test_daemon_follows_writes_edits_renames_and_deletes(setup: Any) -> None:
    d, notes, sessions, m = setup
    d.start()
    assert d.status()["state"] == "running"
    # A second daemon on the same store is refused, and says why.
    second = subprocess.run([str(BIN / "cairn"), "daemon", "run"], env=d.env,
                            capture_output=True, text=True, timeout=30)
    assert second.returncode == 1 and "already running" in second.stderr

    a = notes / "tea.md"
    t0 = time.monotonic()
    a.write_text("My favourite tea is oolong.\n")
    wait_until(lambda: recalled(m, "favourite tea", "oolong", a), what="a new note")
    assert time.monotonic() - t0 < 10

    a.write_text("My favourite tea is jasmine.\n")  # an edit in place
    wait_until(lambda: recalled(m, "favourite tea", "jasmine", a), what="an edit")
    assert not recalled(m, "favourite tea", "oolong")

    tmp = notes / ".tea.md.swp"  # an editor's atomic save: write a temp file, rename it over
    tmp.write_text("My favourite tea is genmaicha.\n")
    os.replace(tmp, a)
    wait_until(lambda: recalled(m, "favourite tea", "genmaicha", a), what="an atomic save")
    assert not recalled(m, "favourite tea", "jasmine")
    ids = {r[0] for r in m.store.conn.execute("select id from episodes")}

    b = notes / "drinks.md"
    a.rename(b)
    wait_until(lambda: recalled(m, "favourite tea", "genmaicha", b), what="a rename")
    assert {r[0] for r in m.store.conn.execute("select id from episodes")} == ids  # same ids

    b.unlink()
    wait_until(lambda: not recalled(m, "favourite tea", "genmaicha"), what="a delete")
    assert m.store.conn.execute("select count(*) from facts").fetchone()[0] == 0

    # A coding-agent session grows while the agent runs: each new line is read once.
    log = sessions / "s-1.jsonl"
    log.write_text(_claude("u-1", "We deploy the garden app with Fly.io.", 1))
    wait_until(lambda: recalled(m, "how do we deploy the garden app", "Fly.io"), what="a session")
    with open(log, "a") as fh:
        fh.write(_claude("u-2", "The staging region for the garden app is Madrid.", 2))
    wait_until(lambda: recalled(m, "staging region", "Madrid"), what="a grown session")
    src = m.store.conn.execute("select read_offset, size from sources where uri = ?",
                               (str(log),)).fetchone()
    assert src[0] == src[1] == log.stat().st_size
    assert m.store.conn.execute("select count(*) from episodes").fetchone()[0] == 2

    # A broken file is reported with its reason; the daemon keeps watching.
    bad = notes / "broken.chat.jsonl"
    bad.write_text('{"conversation": "c1", "id": "m1", "text": "trunc\n')
    wait_until(lambda: any(e["path"] == str(bad) for e in d.status().get("recent_errors", [])),
               what="the error in the status")
    c = notes / "bike.md"
    c.write_text("My bike is a blue Brompton.\n")
    wait_until(lambda: recalled(m, "what bike", "Brompton", c), what="a note after an error")

    # Moved in from outside the watched folders: no close event, it settles and is read.
    outside = notes.parent / "draft.md"
    outside.write_text("My dentist is Maria Ramos.\n")
    os.rename(outside, notes / "dentist.md")
    wait_until(lambda: recalled(m, "who is my dentist", "Ramos"), what="a file moved in")

    out = subprocess.run([str(BIN / "cairn"), "daemon", "status", "--json"], env=d.env,
                         capture_output=True, text=True, timeout=30)
    st = json.loads(out.stdout)
    assert out.returncode == 0 and st["running"] and st["state"] == "running"
    assert {w["path"] for w in st["watching"]} == {str(notes), str(sessions.parent)}
    assert st["counts"]["ingested"] >= 6 and st["counts"]["errors"] >= 1
    assert st["counts"]["deleted"] == 1 and st["counts"]["moved"] == 1

    t = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t < 10
    assert d.status()["state"] == "stopped"
    out = subprocess.run([str(BIN / "cairn"), "daemon", "status"], env=d.env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 3 and "not running" in out.stdout
    assert "oolong" not in (d.home / "logs" / "daemon.log").read_text()  # no memory text at info


def _claude(uuid: str, text: str, minute: int) -> str:
    return json.dumps({
        "parentUuid": None, "isSidechain": False, "userType": "external", "cwd": "/w/garden",
        "sessionId": "s-1", "version": "2.0.31", "type": "user", "uuid": uuid,
        "timestamp": f"2026-05-08T10:{minute:02d}:00.000Z",
        "message": {"role": "user", "content": text}}) + "\n"


def test_stop_and_kill_9_mid_ingest_then_restart_lose_and_duplicate_nothing(setup: Any
                                                                            ) -> None:
    from cairn.ingest.pipeline import content_hash_bytes
    from cairn.ingest.sources import chat_jsonl
    from cairn.ingest.sources import notes as notes_adapter

    d, notes, _sessions, m = setup
    d.start()
    chat = notes / "team.chat.jsonl"
    chat.write_text("".join(json.dumps({
        "conversation": "c1", "id": f"m{i}", "speaker": "Ana" if i % 2 else "Me",
        "role": "other" if i % 2 else "user", "time": f"2026-05-08T10:{i % 60:02d}:00Z",
        "text": f"Message {i}: the order for batch {i} ships on day {i % 28 + 1}."}) + "\n"
        for i in range(600)))
    for i in range(20):
        (notes / f"n{i}.md").write_text(f"Note {i}. My locker number at gym {i} is {100 + i}.\n")

    def stored() -> int:
        return int(m.store.conn.execute("select count(*) from episodes").fetchone()[0])

    # SIGTERM while the export is half stored: a clean exit within 10 s, whole chunks kept.
    wait_until(lambda: stored() > 0, what="ingest to start")
    t = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t < 10
    first = stored()
    # Restart, then kill -9 part-way through catching up.
    d.start_nowait()
    wait_until(lambda: stored() > first, 30, what="ingest to resume")
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    acknowledged = stored()

    d.start()
    wait_until(lambda: d.idle() and d.status()["last_scan"]["complete"], 60, "catching up")
    expected = {str(chat): len(chat_jsonl.parse(chat, chat.read_bytes()).episodes)}
    for p in notes.glob("*.md"):
        expected[str(p)] = len(notes_adapter.parse(p, p.read_bytes()).episodes)
    rows = m.store.conn.execute(
        "select s.uri, s.content_hash, count(e.id) from sources s"
        " left join episodes e on e.source_id = s.id group by s.id").fetchall()
    got = {uri: n for uri, _, n in rows}
    assert got == expected  # nothing lost, nothing twice
    for uri, h, _ in rows:
        assert h == content_hash_bytes(Path(uri).read_bytes())  # caught up to the file
    assert sum(got.values()) >= acknowledged
    dup = m.store.conn.execute(
        "select count(*) from (select content_hash, project from facts"
        " where status != 'superseded' group by content_hash, project having count(*) > 1)"
    ).fetchone()[0]
    assert dup == 0
    assert d.stop() == 0


def test_own_files_inside_a_watched_folder_do_not_wake_it(home: Path, tmp_path: Path) -> None:
    """CAIRN_HOME (store, status, logs) inside the notes folder: the daemon's own writes must
    not feed back into it."""
    home.mkdir(parents=True)
    (home / "config.toml").write_text(f'[sources]\nnotes = ["{tmp_path}"]\n'
                                      '[daemon]\ndebounce = 0.2\n')
    env = {**os.environ, "CAIRN_HOME": str(home), "HOME": str(tmp_path / "user")}
    d = DaemonProc(home, env, tmp_path / "daemon-stdout.log")
    try:
        d.start()
        (tmp_path / "a.md").write_text("My favourite tea is oolong.\n")
        wait_until(lambda: d.status().get("counts", {}).get("ingested") == 1, what="the note")
        time.sleep(1.5)
        before = (home / "cairn.daemon.json").stat().st_mtime_ns
        time.sleep(2.5)
        assert (home / "cairn.daemon.json").stat().st_mtime_ns == before  # quiet when idle
        st = d.status()
        assert st["counts"]["ingested"] == 1 and st["counts"]["errors"] == 0
        assert all("cairn-home" not in e["path"] for e in st["recent_events"])
    finally:
        d.stop()
