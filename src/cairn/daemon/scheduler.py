"""Scheduled jobs inside the daemon: a registry of named jobs, timed by APScheduler 3.x.

APScheduler only decides *when*: at a job's time it asks the daemon's main loop to run it.
The main loop runs it on the daemon's one writer connection when no file events are waiting,
so jobs never run two at once and never hold up ingest; a job that accepts `should_yield`
is told when ingest wants the store back.

A job is a plain function `job(store, *, now, **options)`; the options it may declare are
`should_yield` (a callable) and `memory` (the daemon's Memory, for jobs that embed).
Jobs come from `cairn.consolidation.jobs.JOBS` (name -> function) when that module exists,
and from `register()`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

JobFunc = Callable[..., Any]


@dataclass(frozen=True)
class JobSpec:
    name: str
    func: JobFunc
    minutes: float  # how often; the first run is one interval after the daemon starts


@dataclass
class JobState:
    runs: int = 0
    last_started_at: str | None = None
    last_finished_at: str | None = None
    last_error: str | None = None
    last_result: Any = None


_REGISTRY: dict[str, JobSpec] = {}


def register(name: str, func: JobFunc, *, minutes: float) -> None:
    """Add (or replace) a named job the daemon runs every `minutes`."""
    _REGISTRY[name] = JobSpec(name, func, float(minutes))


def registered_jobs(default_minutes: float) -> list[JobSpec]:
    """The registry plus the consolidation jobs, if that package provides them."""
    jobs = dict(_REGISTRY)
    try:
        mod = importlib.import_module("cairn.consolidation.jobs")
    except ImportError as e:
        if e.name not in ("cairn.consolidation.jobs", "cairn.consolidation"):
            raise
        mod = None
    table = getattr(mod, "JOBS", None) if mod is not None else None
    if isinstance(table, dict):
        for name, func in table.items():
            if name not in jobs and callable(func):
                jobs[name] = JobSpec(name, func, float(default_minutes))
    return sorted(jobs.values(), key=lambda j: j.name)


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    for attr in ("to_dict", "_asdict"):
        if hasattr(value, attr):
            return _jsonable(getattr(value, attr)())
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "__dict__"):
        return {k: _jsonable(v) for k, v in vars(value).items() if not k.startswith("_")}
    return str(value)


@dataclass
class Scheduler:
    """Times the jobs; the daemon's loop calls `take_requests()` and `run()`."""

    jobs: list[JobSpec]
    wake: Callable[[], None] = lambda: None
    state: dict[str, JobState] = field(default_factory=dict)
    _requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _aps: Any = None

    def start(self) -> None:
        for j in self.jobs:
            self.state.setdefault(j.name, JobState())
        if not self.jobs:
            return  # no thread at all when there is nothing to schedule
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        self._aps = BackgroundScheduler(
            timezone=UTC, executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        for j in self.jobs:
            self._aps.add_job(self.request, "interval", args=[j.name], id=j.name, name=j.name,
                              minutes=j.minutes, jitter=min(60, int(j.minutes * 6)))
        self._aps.start()

    def stop(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None

    def request(self, name: str) -> None:
        """Ask the daemon to run a job (from APScheduler's thread, or now)."""
        with self._lock:
            if name not in self._requests:
                self._requests.append(name)
        self.wake()

    def pending(self) -> bool:
        with self._lock:
            return bool(self._requests)

    def take_request(self) -> str | None:
        with self._lock:
            return self._requests.pop(0) if self._requests else None

    def run(self, name: str, store: Any, *, now: datetime, should_yield: Callable[[], bool],
            memory: Any = None) -> None:
        """Run one job now on the caller's thread; its run is recorded in job_runs."""
        spec = next((j for j in self.jobs if j.name == name), None)
        if spec is None:
            return
        st = self.state.setdefault(name, JobState())
        st.runs += 1
        st.last_started_at = _iso(now)
        params = inspect.signature(spec.func).parameters
        extra: dict[str, Any] = {}
        if "should_yield" in params:
            extra["should_yield"] = should_yield
        if "memory" in params:
            extra["memory"] = memory
        run_id = _job_run_start(store, name, st.last_started_at or "")
        error = None
        result: Any = None
        try:
            log.info("job %s started", name)
            result = spec.func(store, now=now, **extra)
            st.last_error = None
            st.last_result = _jsonable(result)
            log.info("job %s finished", name)
        except Exception as e:  # a failing job is logged and counted, never fatal
            error = f"{type(e).__name__}: {e}"[:500]
            st.last_error = error
            log.exception("job %s failed", name)
        st.last_finished_at = _iso(datetime.now(UTC))
        _job_run_finish(store, run_id, st.last_finished_at or "", st.last_result, error)

    def to_dict(self) -> list[dict[str, Any]]:
        out = []
        for j in self.jobs:
            st = self.state.get(j.name, JobState())
            nxt = None
            if self._aps is not None:
                job = self._aps.get_job(j.name)
                nxt = _iso(getattr(job, "next_run_time", None)) if job else None
            out.append({"name": j.name, "every_minutes": j.minutes, "next_run_at": nxt,
                        "runs": st.runs, "last_started_at": st.last_started_at,
                        "last_finished_at": st.last_finished_at, "last_error": st.last_error})
        return out


def _job_run_start(store: Any, name: str, started: str) -> int | None:
    try:
        with store.transaction():
            cur = store.conn.execute(
                "insert into job_runs(job, started_at, dry_run) values (?, ?, 0)", (name, started))
            return int(cur.lastrowid)
    except Exception:  # bookkeeping must not stop the job
        log.exception("cannot record the start of job %s", name)
        return None


def _job_run_finish(store: Any, run_id: int | None, finished: str, result: Any,
                    error: str | None) -> None:
    if run_id is None:
        return
    counts = result if isinstance(result, dict) else {"result": result} if result is not None else {}
    try:
        with store.transaction():
            store.conn.execute(
                "update job_runs set finished_at = ?, counts = ?, error = ? where id = ?",
                (finished, json.dumps(counts, default=str), error, run_id))
    except Exception:
        log.exception("cannot record the end of job run %s", run_id)
