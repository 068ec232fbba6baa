"""`cairn daemon run`: the lock, logging, signals and the main loop.

The main thread owns the one writer connection. Watchdog's threads only queue paths; the loop
takes the ready ones, applies them in order (renames, reads, deletes), runs a reconciliation
scan at start, after an inotify overflow and every `rescan_minutes`, runs scheduled jobs when
nothing is waiting, and rewrites the status file. Everything a file can do wrong is caught per
file, counted and logged; the daemon keeps watching.
"""

from __future__ import annotations

import functools
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from cairn.config import Settings, ensure_private_dir
from cairn.daemon.defaults import Root, watched_roots
from cairn.daemon.events import EventQueue, match_renames, plan_batch, plan_scan
from cairn.daemon.scheduler import Scheduler, registered_jobs
from cairn.daemon.status import DaemonLock, DaemonPaths, write_status

log = logging.getLogger("cairn.daemon")

STOP_GRACE = 8.0          # seconds between a stop signal and a forced exit
STATUS_EVERY = 1.0        # at most one status write per second while busy
MAX_RECENT = 20
SCAN_YIELD_EVERY = 0.25   # seconds of scanning between looks at the event queue
LOG_BYTES = 5 * 1024 * 1024
RETRY_AFTER = (5.0, 30.0, 120.0)  # seconds before retrying a file whose ingest raised


class Stopping(Exception):
    """Raised inside long work when a stop was requested."""


def _iso(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def setup_logging(log_file: Path, level: int, *, stderr: bool = True) -> None:
    """A rotating file in the log dir, plus stderr in the foreground. Synchronous handlers."""
    ensure_private_dir(log_file.parent)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    fh = logging.handlers.RotatingFileHandler(log_file, maxBytes=LOG_BYTES, backupCount=3,
                                              encoding="utf-8")
    fh.setFormatter(fmt)
    root.addHandler(fh)
    if stderr:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(fmt)
        root.addHandler(sh)
    root.setLevel(level)
    # Third-party chatter (APScheduler logs every run at INFO) stays at warnings.
    for name in ("apscheduler", "watchdog"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


@dataclass
class Counts:
    ingested: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: int = 0
    deleted: int = 0
    moved: int = 0
    episodes_added: int = 0
    episodes_removed: int = 0
    facts_added: int = 0
    facts_retracted: int = 0


@dataclass
class DaemonState:
    started_at: str = field(default_factory=_iso)
    state: str = "starting"
    activity: str = "idle"
    counts: Counts = field(default_factory=Counts)
    recent_errors: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_RECENT))
    recent_events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))
    last_event: dict[str, Any] | None = None
    last_scan: dict[str, Any] | None = None
    overflows: int = 0


class Daemon:
    """One daemon on one store. `run()` blocks until SIGTERM/SIGINT (or the scan with once)."""

    def __init__(self, settings: Settings, *, memory: Any = None, once: bool = False,
                 home: Path | None = None, install_signals: bool = True) -> None:
        self.settings = settings
        self.paths = DaemonPaths.for_store(settings.db_path, settings.log_dir)
        self._memory = memory
        self.once = once
        self.home = home
        self.install_signals = install_signals
        self.state = DaemonState()
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        debounce = float(settings.get("daemon", "debounce"))
        from cairn.daemon.watcher import Watcher

        self.queue = EventQueue(debounce=debounce, max_wait=max(5.0, debounce * 10),
                                close_events=Watcher.close_events_supported())
        self.roots: list[Root] = []
        self.defaults = False
        self.watcher: Any = None
        self.scheduler: Scheduler | None = None
        self.scan_reasons: list[str] = []
        self.rescan_every = max(0.0, float(settings.get("daemon", "rescan_minutes"))) * 60
        self.next_rescan = float("inf")
        self.gone_roots: set[str] = set()
        self.ignored: dict[str, tuple[float, int]] = {}   # not for this folder, by stat
        self.failed: dict[str, tuple[float, int]] = {}    # errored, by stat: not retried
        self.retries: dict[str, int] = {}                 # raised unexpectedly: retried later
        db = os.path.realpath(settings.db_path)
        # cairn's own files may sit inside a watched folder: their writes are not notes.
        self.own_files = {db, db + "-wal", db + "-shm", db + "-journal",
                          os.path.realpath(self.paths.status), os.path.realpath(self.paths.lock)}
        self.own_prefix = os.path.realpath(self.paths.log)
        self._status_dirty = True
        self._status_at = 0.0
        self._status_key: tuple[Any, ...] = ()
        self._lock = DaemonLock(self.paths.lock)
        self._signals = 0

    # ------------------------------------------------------------ lifecycle

    @property
    def memory(self) -> Any:
        if self._memory is None:
            from cairn.service import Memory

            self._memory = Memory(self.settings)
        return self._memory

    def wake(self) -> None:
        self.wake_event.set()

    def request_stop(self, *_: object) -> None:
        self.stop_event.set()
        self.wake_event.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            # A second Ctrl-C: the user means it. SQLite's transactions keep the store whole.
            log.warning("second signal: exiting now")
            self._lock.release()
            os._exit(130)
        log.info("signal %s: stopping", signal.Signals(signum).name)
        self.request_stop()
        # Trigger: a stop while one file takes long (OCR of a huge image, a big export).
        # Why: the service manager expects an exit within its timeout.
        # Outcome: after STOP_GRACE s, leave without finishing; the next start redoes it.
        t = threading.Timer(STOP_GRACE, self._force_exit)
        t.daemon = True
        t.start()

    def _force_exit(self) -> None:
        log.warning("stopping took over %.0f s: exiting without finishing the current file",
                    STOP_GRACE)
        try:
            self.state.state = "stopped"
            self._write_status(force=True)
        finally:
            self._lock.release()
            os._exit(0)

    def run(self) -> int:
        """Run until stopped; returns the exit code."""
        self._lock.acquire()
        try:
            if self.install_signals:
                signal.signal(signal.SIGTERM, self._on_signal)
                signal.signal(signal.SIGINT, self._on_signal)
            return self._run()
        finally:
            self._shutdown()
            self._lock.release()

    def _run(self) -> int:
        log.info("cairn daemon starting (pid %d, store %s)", os.getpid(), self.settings.db_path)
        self._write_status(force=True)
        self.roots, self.defaults = watched_roots(self.settings, home=self.home)
        if not self.roots:
            log.warning("nothing to watch: no [sources] in %s and none of the usual places exist",
                        self.settings.config_path)
        # Load the model and the store before watching: a missing model is a clear error now.
        _ = self.memory.ingestor
        if not self.once:
            from cairn.daemon.watcher import Watcher

            self.watcher = Watcher(self.queue, wake=self.wake, on_overflow=self._overflow,
                                   on_root_gone=self._root_gone, ignore=self._own_file)
            self.watcher.start()
            self.watcher.watch([r.path for r in self.roots])
            self.scheduler = Scheduler(
                registered_jobs(float(self.settings.get("consolidation", "schedule_minutes"))),
                wake=self.wake)
            self.scheduler.start()
        for r in self.roots:
            log.info("%s %s: %s%s", r.origin, ",".join(r.kinds), r.path,
                     f" ({r.why})" if r.why else "")
        self.state.state = "running"
        self.scan_reasons.append("start")
        self._write_status(force=True)
        while not self.stop_event.is_set():
            try:
                self._step()
            except Stopping:
                break
            if self.once and not self.scan_reasons:
                break
            self._write_status()
            timeout = self._timeout()
            if timeout > 0:
                self.wake_event.wait(timeout)
            self.wake_event.clear()
        return 0

    def _shutdown(self) -> None:
        self.state.state = "stopping"
        try:
            if self.scheduler is not None:
                self.scheduler.stop()
            if self.watcher is not None:
                self.watcher.stop()
        finally:
            self.state.state = "stopped"
            self.state.activity = "idle"
            try:
                self._write_status(force=True)
            except OSError:
                log.exception("cannot write the status file")
            if self._memory is not None:
                self._memory.close()
            log.info("cairn daemon stopped")

    # ------------------------------------------------------------ the loop

    def _step(self) -> None:
        now = time.monotonic()
        if self.gone_roots and self.watcher is not None:
            for root in list(self.gone_roots):
                self.watcher.drop(root)
                self.gone_roots.discard(root)
        self.process_due()
        if self.scan_reasons:
            reasons = list(dict.fromkeys(self.scan_reasons))
            self.scan_reasons.clear()
            self.scan(", ".join(reasons))
            self.next_rescan = time.monotonic() + self.rescan_every if self.rescan_every else \
                float("inf")
        elif now >= self.next_rescan:
            if self.watcher is not None:
                self.watcher.watch([r.path for r in self.roots])  # roots that appeared since
            self.scan_reasons.append("schedule")
        elif self.scheduler is not None and self.scheduler.pending() and not len(self.queue):
            name = self.scheduler.take_request()
            if name:
                self._run_job(name)

    def _timeout(self) -> float:
        now = time.monotonic()
        if self.scan_reasons or (self.scheduler is not None and self.scheduler.pending()):
            return 0.0
        deadlines = [self.next_rescan, now + 3600]
        nd = self.queue.next_due()
        if nd is not None:
            deadlines.append(nd)
        if self._status_dirty:
            deadlines.append(self._status_at + STATUS_EVERY)
        return max(0.0, min(deadlines) - now)

    def _overflow(self) -> None:
        # Trigger: inotify dropped events. Outcome: a full reconciliation scan catches up.
        self.state.overflows += 1
        self.scan_reasons.append("inotify overflow")
        self.wake()

    def _root_gone(self, root: str) -> None:
        self.gone_roots.add(root)
        self.wake()

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise Stopping()

    def _progress(self, what: str, advance: int, total: int | None) -> None:
        # Called by the pipeline after each committed chunk: a safe point to stop.
        self._check_stop()

    def _own_file(self, path: str) -> bool:
        """The store, its WAL, the status file, the lock, the logs: never read as notes (and
        their writes must not wake the daemon, or its status writes would feed themselves)."""
        return path in self.own_files or path.startswith(self.own_prefix)

    def _adapters_for(self, path: str) -> frozenset[str] | None:
        """The adapters the watched folders containing this path feed (None: not watched)."""
        if self._own_file(path):
            return None
        found: frozenset[str] | None = None
        for r in self.roots:
            rp = str(r.path)
            if path == rp or path.startswith(rp.rstrip(os.sep) + os.sep):
                found = r.adapters if found is None else found | r.adapters
        return found

    # ------------------------------------------------------------ events

    def process_due(self) -> None:
        """Apply every ready event, in order; check for a stop between files."""
        ready = self.queue.take_due(time.monotonic())
        if not ready:
            return
        stat: dict[str, tuple[float, int] | None] = {}
        for path, it in ready.items():
            for p in (path, it.moved_from):
                if p and p not in stat:
                    stat[p] = _stat(p)
        plan = plan_batch(ready, stat)
        now = time.monotonic()
        for path, it in plan.settle.items():
            self.queue.requeue(path, it, now)
        ingestor = self.memory.ingestor
        self.state.activity = "ingesting"
        try:
            for old, new in plan.moves:
                self._check_stop()
                kinds = self._adapters_for(new)
                if kinds is None or ingestor.sniff(Path(new)) not in kinds:
                    continue
                if self._guard(old, functools.partial(ingestor.source_moved, Path(old),
                                                      Path(new))):
                    self.state.counts.moved += 1
                    self._event(new, "moved", "moved", f"from {old}")
                    log.info("moved %s -> %s", old, new)
            for path in plan.reads:
                self._check_stop()
                self._read(path, "changed")
            for path in plan.deletes:
                self._check_stop()
                self._delete(path)
            for path in plan.dir_deletes:
                self._check_stop()
                self._delete_dir(path)
        finally:
            # On a stop, what was not done is left to the next start's scan.
            self.state.activity = "idle"

    def _read(self, path: str, action: str, kinds: frozenset[str] | None = None) -> None:
        kinds = kinds if kinds is not None else self._adapters_for(path)
        if kinds is None:
            return
        st = _stat(path)
        if st is not None and self.failed.get(path) == st:
            return  # the same bytes failed before: reported once
        res = self._guard(path, lambda: self.memory.ingestor.ingest_watched(
            Path(path), kinds=kinds, progress=self._progress))
        if res is False:
            self._retry_later(path)
            return
        self.retries.pop(path, None)
        if res is None:
            if st is not None:
                self.ignored[path] = st
            return
        self.ignored.pop(path, None)
        self._account(path, action, res, st)

    def _retry_later(self, path: str) -> None:
        # Trigger: ingest raised (store busy past every retry, a disk error, a bug).
        # Why: most of these pass; a file should not wait for the hourly rescan.
        # Outcome: retried after 5 s, 30 s, 2 min, then left to the next scan.
        n = self.retries.get(path, 0)
        if n < len(RETRY_AFTER):
            self.retries[path] = n + 1
            self.queue.closed(path, time.monotonic() + RETRY_AFTER[n])
        else:
            self.retries.pop(path, None)

    def _delete(self, path: str) -> None:
        if self._adapters_for(path) is None:
            return
        self.ignored.pop(path, None)
        self.failed.pop(path, None)
        res = self._guard(path, lambda: self.memory.ingestor.source_deleted(Path(path)))
        if res is False:
            self._retry_later(path)
        elif res.status == "deleted":  # "unchanged": it was never a source (a temp file)
            self._account(path, "deleted", res, None)

    def _delete_dir(self, path: str) -> None:
        try:
            root = Path(path).resolve()
        except (OSError, RuntimeError):
            root = Path(path)
        for uri, k in self.memory.ingestor.known_sources(root).items():
            self._check_stop()
            if k[2] == "live" and not os.path.lexists(uri):
                self._delete(uri)

    def _guard(self, path: str, fn: Callable[[], Any]) -> Any:
        """Run one file's work; an unexpected failure is counted and logged, never fatal."""
        try:
            return fn()
        except Stopping:
            raise
        except Exception as e:  # one bad file must not stop the daemon
            log.exception("failed on %s", path)
            self._error(path, f"{type(e).__name__}: {e}")
            return False

    def _account(self, path: str, action: str, res: Any, st: tuple[float, int] | None) -> None:
        c = self.state.counts
        status = res.status
        if status == "ingested":
            c.ingested += 1
            log.info("ingested %s: +%d episodes, -%d, +%d facts, %d retracted", path,
                     res.episodes_added, res.episodes_removed, res.facts_added,
                     res.facts_retracted)
        elif status == "unchanged":
            c.unchanged += 1
            if action != "scan":
                log.debug("unchanged %s", path)
        elif status == "deleted":
            c.deleted += 1
            log.info("deleted %s: -%d episodes, %d facts retracted", path, res.episodes_removed,
                     res.facts_retracted)
        elif status == "skipped":
            c.skipped += 1
            log.info("skipped %s: %s", path, res.reason)
        elif status == "error":
            if st is not None:
                self.failed[path] = st
            self._error(path, res.reason or "error")
        c.episodes_added += res.episodes_added
        c.episodes_removed += res.episodes_removed
        c.facts_added += res.facts_added
        c.facts_retracted += res.facts_retracted
        if status != "unchanged" or action != "scan":
            self._event(path, action, status, res.reason)

    def _event(self, path: str, action: str, result: str, reason: str | None = None) -> None:
        ev = {"at": _iso(), "path": path, "action": action, "result": result}
        if reason:
            ev["reason"] = reason
        self.state.last_event = ev
        self.state.recent_events.appendleft(ev)
        self._status_dirty = True

    def _error(self, path: str, reason: str) -> None:
        self.state.counts.errors += 1
        log.warning("cannot ingest %s: %s", path, reason)
        self.state.recent_errors.appendleft({"at": _iso(), "path": path, "reason": reason})
        self._event(path, "error", "error", reason)

    # ------------------------------------------------------------ scans

    def scan(self, reason: str) -> None:
        """Reconcile every watched folder with the store: read what is new or changed (by
        mtime and size, without opening unchanged files), re-point renamed files, retract
        what was deleted while the daemon was not looking."""
        t0 = time.monotonic()
        started = _iso()
        self.state.activity = "scanning"
        self._write_status(force=True)
        log.info("scan started (%s)", reason)
        ingestor = self.memory.ingestor
        files = read = deleted = moved = 0
        last_yield = time.monotonic()
        from cairn.ingest.pipeline import walk

        try:
            for root in self.roots:
                rp = str(root.path)
                if not os.path.isdir(rp):
                    # A missing root (an unmounted disk) is not a deletion of its notes.
                    continue
                disk: dict[str, tuple[float, int]] = {}
                for path, _explicit, err in walk([root.path]):
                    if err:
                        if err != "no such file or directory":
                            self._error(str(path), err)
                        continue
                    try:
                        uri = os.path.realpath(path)
                        st = os.stat(uri)
                    except OSError:
                        continue
                    disk[uri] = (st.st_mtime, st.st_size)
                files += len(disk)
                plan = plan_scan(disk, ingestor.known_sources(root.path), self.ignored)
                # Renames while the daemon was down: a vanished source whose content hash
                # matches a file that appeared keeps its identity.
                gone = [u for u in plan.missing if not os.path.lexists(u)]
                if gone and plan.new:
                    known = ingestor.known_sources(root.path)
                    missing_hashes = {u: known[u][3] for u in gone}
                    wanted = {h for h in missing_hashes.values() if h}
                    sizes = {known[g][1] for g in gone}
                    new_hashes: dict[str, str] = {}
                    for u in sorted(plan.new):
                        if disk[u][1] in sizes:
                            h = _file_hash(u)
                            if h is not None and h in wanted:
                                new_hashes[u] = h
                    for old, new in match_renames(new_hashes, missing_hashes):
                        if ingestor.source_moved(Path(old), Path(new)):
                            moved += 1
                            self.state.counts.moved += 1
                            self._event(new, "moved", "moved", f"from {old} (while stopped)")
                            gone.remove(old)
                for u in plan.read:
                    self._check_stop()
                    self._read(u, "scan", root.adapters)
                    read += 1
                    if time.monotonic() - last_yield > SCAN_YIELD_EVERY:
                        # A note saved during a long first scan is still read within seconds.
                        self.process_due()
                        self._write_status()
                        last_yield = time.monotonic()
                for u in gone:
                    self._check_stop()
                    self._delete(u)
                    deleted += 1
        finally:
            secs = time.monotonic() - t0
            self.state.last_scan = {"reason": reason, "started_at": started,
                                    "finished_at": _iso(), "seconds": round(secs, 3),
                                    "files": files, "read": read, "deleted": deleted,
                                    "moved": moved,
                                    "complete": not self.stop_event.is_set()}
            self.state.activity = "idle"
            self._status_dirty = True
        log.info("scan done in %.2f s: %d files, %d read, %d deleted, %d moved", secs, files,
                 read, deleted, moved)

    # ------------------------------------------------------------ jobs

    def _run_job(self, name: str) -> None:
        assert self.scheduler is not None
        self.state.activity = f"job:{name}"
        self._write_status(force=True)

        def should_yield() -> bool:
            return self.stop_event.is_set() or self.queue.has_due(time.monotonic())

        try:
            self.scheduler.run(name, self.memory.store, now=datetime.now(UTC),
                               should_yield=should_yield, memory=self.memory)
        finally:
            self.state.activity = "idle"
            self._status_dirty = True

    # ------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        s = self.state
        watching = []
        errors = self.watcher.errors if self.watcher is not None else {}
        watched = self.watcher.watches if self.watcher is not None else {}
        for r in self.roots:
            d = r.to_dict()
            p = str(r.path)
            d["watched"] = p in watched or any(
                p.startswith(w.rstrip(os.sep) + os.sep) for w in watched)
            d["error"] = errors.get(p)
            watching.append(d)
        nxt = None
        if self.next_rescan != float("inf"):
            nxt = _iso(time.time() + (self.next_rescan - time.monotonic()))
        return {
            "state": s.state,
            "activity": s.activity,
            "pid": os.getpid(),
            "started_at": s.started_at,
            "updated_at": _iso(),
            "store": str(self.settings.db_path),
            "config": str(self.settings.config_path),
            "log_file": str(self.paths.log),
            "defaults": self.defaults,
            "watching": watching,
            "queue_length": len(self.queue),
            "last_event": s.last_event,
            "counts": dict(vars(s.counts)),
            "recent_errors": list(s.recent_errors),
            "recent_events": list(s.recent_events),
            "last_scan": s.last_scan,
            "next_scan_at": nxt,
            "inotify_overflows": s.overflows,
            "jobs": self.scheduler.to_dict() if self.scheduler is not None else [],
        }

    def _write_status(self, force: bool = False) -> None:
        now = time.monotonic()
        key = (len(self.queue), self.state.activity, self.state.state)
        if key != self._status_key:
            self._status_dirty = True
        # Throttled while busy; once nothing is waiting the status says so at once (a script
        # that waits for "idle" must not read counts a second old).
        busy = bool(len(self.queue) or self.scan_reasons or self.state.activity != "idle")
        if not force and (not self._status_dirty
                          or (busy and now - self._status_at < STATUS_EVERY)):
            return
        self._status_key = key
        try:
            write_status(self.paths.status, self.status())
        except OSError as e:
            log.error("cannot write %s: %s", self.paths.status, e)
        self._status_at = now
        self._status_dirty = False


def _stat(path: str) -> tuple[float, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    import stat as stat_mod

    return (st.st_mtime, st.st_size) if stat_mod.S_ISREG(st.st_mode) else None


def _file_hash(path: str) -> str | None:
    from cairn.ingest.pipeline import content_hash_bytes

    try:
        with open(path, "rb") as fh:
            return content_hash_bytes(fh.read())
    except OSError:
        return None


def run_daemon(settings: Settings, *, once: bool = False, level: int = logging.INFO) -> int:
    """The `cairn daemon run` entry point: private files, logging, then the loop."""
    os.umask(0o077)  # the log, status and store hold private text: user-only files
    paths = DaemonPaths.for_store(settings.db_path, settings.log_dir)
    setup_logging(paths.log, level)
    from cairn.errors import CairnError

    try:
        return Daemon(settings, once=once).run()
    except CairnError as e:
        # Under launchd stderr goes nowhere: the log file must say why the daemon stopped.
        log.error("cannot run: %s", e)
        raise
    except Exception:
        log.exception("the daemon crashed; the service manager restarts it")
        raise


__all__ = ["Daemon", "Stopping", "run_daemon", "setup_logging"]
