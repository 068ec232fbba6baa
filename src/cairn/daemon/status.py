"""The daemon's files next to its store: the lock that keeps one daemon per store, and the
status JSON it rewrites atomically for `cairn daemon status`."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cairn.errors import CairnError

STATUS_VERSION = 1


class AlreadyRunning(CairnError):
    """Another daemon holds the lock on this store."""


@dataclass(frozen=True)
class DaemonPaths:
    lock: Path
    status: Path
    log: Path

    @classmethod
    def for_store(cls, db_path: Path, log_dir: Path) -> DaemonPaths:
        """One lock and one status per store (CAIRN_DB may put two stores in one folder)."""
        stem = db_path.stem or "cairn"
        return cls(lock=db_path.with_name(f"{stem}.daemon.lock"),
                   status=db_path.with_name(f"{stem}.daemon.json"),
                   log=log_dir / "daemon.log")


# ---------------------------------------------------------------- lock

def _try_lock(fh: IO[Any]) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


class DaemonLock:
    """An advisory lock on a file: the kernel drops it when the process dies, even by kill -9,
    so a stale lock file never blocks a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[Any] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fh = os.fdopen(fd, "r+")
        if not _try_lock(fh):
            other = fh.read().strip()
            fh.close()
            who = f" (pid {other})" if other.isdigit() else ""
            raise AlreadyRunning(
                f"a cairn daemon is already running on this store{who}; lock {self.path}."
                " Stop it first, or see 'cairn daemon status'.")
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.seek(0)
                self._fh.truncate()
            self._fh.close()  # closing drops the lock
            self._fh = None

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_held(path: Path) -> bool:
    """Whether some process holds the daemon lock (probing it takes and drops it at once)."""
    if not path.exists():
        return False
    try:
        fh = open(path, "r+")  # noqa: SIM115 - closed below; the lock lives as long as the handle
    except OSError:
        return False
    try:
        return not _try_lock(fh)
    finally:
        fh.close()


# ---------------------------------------------------------------- status file

def write_status(path: Path, data: dict[str, Any]) -> None:
    """Write-then-rename, so a reader never sees half a file (and a kill leaves the old one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"status_version": STATUS_VERSION, **data}, fh, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_status(paths: DaemonPaths) -> dict[str, Any]:
    """The last status the daemon wrote, with `state` corrected when the daemon is gone."""
    data: dict[str, Any] = {}
    try:
        data = json.loads(paths.status.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            data = {}
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:
        data = {"status_error": f"cannot read {paths.status}: {e}"}
    running = lock_held(paths.lock)
    last = data.get("state")
    if not running:
        if last in ("starting", "running", "stopping"):
            # Trigger: the file says running but nobody holds the lock.
            # Why: the daemon was killed (kill -9, crash, power loss) before it could say so.
            data["state"] = "stopped"
            data["unclean_exit"] = True
        elif not last:
            data["state"] = "stopped"
    elif last not in ("starting", "running", "stopping"):
        data["state"] = "running"  # a daemon that has not written its first status yet
    data["running"] = running
    data.setdefault("status_file", str(paths.status))
    data.setdefault("log_file", str(paths.log))
    return data
