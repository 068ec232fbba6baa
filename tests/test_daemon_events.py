"""The daemon's pure parts: debouncing, batch order, scan plans, default locations, lock, status."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.daemon.events import EventQueue, match_renames, plan_batch, plan_scan
from cairn.daemon.watcher import ignored_path


def test_closed_event_is_ready_after_debounce() -> None:
    q = EventQueue(debounce=0.5)
    q.closed("/n/a.md", 10.0)
    assert q.take_due(10.4) == {}
    ready = q.take_due(10.5)
    assert list(ready) == ["/n/a.md"] and ready["/n/a.md"].action == "changed"
    assert len(q) == 0


def test_burst_of_writes_is_one_event_bounded_by_max_wait() -> None:
    q = EventQueue(debounce=0.5, max_wait=2.0)
    for i in range(20):
        q.closed("/n/a.md", 10.0 + i * 0.3)  # writes every 0.3 s for 6 s
        if q.take_due(10.0 + i * 0.3):
            break
    else:
        pytest.fail("a file written continuously was never read")
    assert i * 0.3 <= 2.1


def test_created_alone_settles_and_closed_makes_it_ready() -> None:
    q = EventQueue(debounce=0.5)
    q.created("/n/a.md", 1.0)
    item = q.take_due(1.5)["/n/a.md"]
    assert item.action == "settle"
    q.created("/n/b.md", 1.0)
    q.closed("/n/b.md", 1.1)
    assert q.take_due(1.6)["/n/b.md"].action == "changed"


def test_settle_waits_until_size_stops_changing() -> None:
    q = EventQueue(debounce=0.5)
    q.created("/n/a.md", 1.0)
    ready = q.take_due(2.0)
    plan = plan_batch(ready, {"/n/a.md": (5.0, 10)})
    assert not plan.reads and "/n/a.md" in plan.settle
    q.requeue("/n/a.md", plan.settle["/n/a.md"], 2.0)
    plan = plan_batch(q.take_due(3.0), {"/n/a.md": (5.0, 10)})
    assert plan.reads == ["/n/a.md"]


def test_modified_without_close_events_settles() -> None:
    linux = EventQueue(debounce=0.5, close_events=True)
    linux.modified("/n/a.md", 1.0)
    assert len(linux) == 0  # wait for the close
    other = EventQueue(debounce=0.5, close_events=False)
    other.modified("/n/a.md", 1.0)
    assert other.take_due(2.0)["/n/a.md"].action == "settle"


def test_atomic_save_is_an_edit_of_the_target() -> None:
    q = EventQueue(debounce=0.5)
    q.closed("/n/.a.md.tmp", 1.0)
    q.moved("/n/.a.md.tmp", "/n/a.md", 1.1)
    ready = q.take_due(2.0)
    plan = plan_batch(ready, {"/n/a.md": (1.0, 5), "/n/.a.md.tmp": None})
    assert plan.reads == ["/n/a.md"]
    assert plan.deletes == ["/n/.a.md.tmp"]


def test_rename_plans_a_move_then_a_read() -> None:
    q = EventQueue(debounce=0.5)
    q.moved("/n/a.md", "/n/b.md", 1.0)
    q.moved("/n/b.md", "/n/c.md", 1.1)  # renamed twice before the batch ran
    plan = plan_batch(q.take_due(2.0), {"/n/a.md": None, "/n/b.md": None, "/n/c.md": (1.0, 5)})
    assert plan.moves == [("/n/a.md", "/n/c.md")]
    assert plan.reads == ["/n/c.md"]
    assert set(plan.deletes) == {"/n/a.md", "/n/b.md"}


def test_delete_then_rewrite_is_an_edit() -> None:
    q = EventQueue(debounce=0.5)
    q.deleted("/n/a.md", 1.0)
    q.created("/n/a.md", 1.1)
    q.closed("/n/a.md", 1.2)
    plan = plan_batch(q.take_due(2.0), {"/n/a.md": (1.0, 5)})
    assert plan.reads == ["/n/a.md"] and not plan.deletes
    q.deleted("/n/b.md", 1.0)
    plan = plan_batch(q.take_due(2.0), {"/n/b.md": (1.0, 5)})  # back before we looked
    assert plan.reads == ["/n/b.md"]


def test_plan_scan_reads_only_new_or_changed() -> None:
    known = {"/n/same.md": (1.0, 10, "live", "b2:x"), "/n/edited.md": (1.0, 10, "live", "b2:y"),
             "/n/gone.md": (1.0, 10, "live", "b2:z"), "/n/old.md": (None, None, "deleted", None),
             "/n/failed.md": (1.0, 10, "live", None)}
    disk = {"/n/same.md": (1.0, 10), "/n/edited.md": (2.0, 10), "/n/new.md": (1.0, 3),
            "/n/old.md": (1.0, 3), "/n/failed.md": (1.0, 10), "/n/x.png": (1.0, 9)}
    plan = plan_scan(disk, known, ignored={"/n/x.png": (1.0, 9)})
    assert sorted(plan.read) == ["/n/edited.md", "/n/failed.md", "/n/new.md", "/n/old.md"]
    assert plan.new == {"/n/new.md", "/n/old.md"}
    assert plan.missing == ["/n/gone.md"]
    assert plan.unchanged == 2


def test_match_renames_by_content_hash() -> None:
    pairs = match_renames({"/n/new.md": "b2:a", "/n/other.md": "b2:q"},
                          {"/n/old.md": "b2:a", "/n/gone.md": "b2:b"})
    assert pairs == [("/n/old.md", "/n/new.md")]


def test_ignored_paths() -> None:
    root = "/n"
    assert ignored_path("/n/.obsidian/workspace.json", root)
    assert ignored_path("/n/sub/.a.md.swp", root)
    assert ignored_path("/n/a.md~", root)
    assert ignored_path("/n/node_modules/x.md", root)
    assert ignored_path("/n/4913", root)
    assert not ignored_path("/n/sub/a.md", root)


# ---------------------------------------------------------------- what is watched


def _settings(home: Path, config: str = "") -> object:
    from cairn.config import load_settings

    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(config, encoding="utf-8")
    return load_settings()


def test_defaults_are_the_usual_places_that_exist(home: Path, tmp_path: Path) -> None:
    from cairn.daemon.defaults import watched_roots

    user = tmp_path / "user"
    (user / "Notes").mkdir(parents=True)
    (user / ".claude" / "projects").mkdir(parents=True)
    (user / "Pictures" / "Screenshots").mkdir(parents=True)
    vault = user / "Sync" / "Vault"
    (vault / ".obsidian").mkdir(parents=True)
    cfg = user / ".config" / "obsidian"
    cfg.mkdir(parents=True)
    (cfg / "obsidian.json").write_text(json.dumps({"vaults": {"x": {"path": str(vault)}}}))
    roots, defaults = watched_roots(_settings(home), home=user, env={"HOME": str(user)})  # type: ignore[arg-type]
    assert defaults
    found = {(r.path.name, r.kinds) for r in roots}
    assert ("Notes", ("notes",)) in found
    assert ("Vault", ("notes",)) in found
    assert ("projects", ("agent_sessions",)) in found
    shots = [r for r in roots if r.kinds == ("screenshots",)]
    if sys.platform.startswith("linux"):
        assert shots and shots[0].adapters == frozenset({"screenshot"})
    assert not any(r.path.name == "sessions" for r in roots)  # ~/.codex does not exist


def test_configured_sources_replace_defaults(home: Path, tmp_path: Path) -> None:
    from cairn.daemon.defaults import watched_roots

    user = tmp_path / "user"
    (user / "Notes").mkdir(parents=True)
    s = _settings(home, f'[sources]\nnotes = ["{tmp_path}/mine"]\nchats = ["{tmp_path}/mine"]\n')
    roots, defaults = watched_roots(s, home=user, env={})  # type: ignore[arg-type]
    assert not defaults
    assert len(roots) == 1 and roots[0].kinds == ("notes", "chats")
    assert roots[0].adapters == frozenset({"note", "chat"})


# ---------------------------------------------------------------- lock and status


def test_lock_stops_a_second_daemon_and_dies_with_its_process(tmp_path: Path) -> None:
    from cairn.daemon.status import AlreadyRunning, DaemonLock, lock_held

    path = tmp_path / "cairn.daemon.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from cairn.daemon.status import DaemonLock;"
         f" lk = DaemonLock(Path({str(path)!r})); lk.acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert lock_held(path)
        with pytest.raises(AlreadyRunning, match=str(holder.pid)):
            DaemonLock(path).acquire()
    finally:
        holder.kill()  # kill -9: the kernel releases the lock
        holder.wait()
    assert not lock_held(path)
    with DaemonLock(path):
        assert lock_held(path)


def test_status_of_a_killed_daemon_says_stopped(tmp_path: Path) -> None:
    from cairn.daemon.status import DaemonPaths, read_status, write_status

    paths = DaemonPaths.for_store(tmp_path / "cairn.db", tmp_path / "logs")
    assert read_status(paths)["state"] == "stopped"
    write_status(paths.status, {"state": "running", "pid": 12345})
    assert oct(os.stat(paths.status).st_mode & 0o777) == "0o600"
    st = read_status(paths)
    assert st["state"] == "stopped" and st["unclean_exit"] and not st["running"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_overflow_warning_triggers_a_rescan() -> None:
    from cairn.daemon.watcher import Watcher

    calls: list[str] = []

    class FakeObserver:
        daemon = False

        def start(self) -> None: ...
        def stop(self) -> None: ...
        def join(self, timeout: float) -> None: ...

    w = Watcher(EventQueue(), wake=lambda: None, on_overflow=lambda: calls.append("scan"),
                on_root_gone=lambda r: None, observer_factory=FakeObserver)
    w.start()
    try:
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost")
    finally:
        w.stop()
    assert calls == ["scan"]
