"""watchdog observers over the watched folders, feeding the debounced EventQueue.

Only finished writes count (`closed`), and renames (`moved`, how editors save atomically);
a bare `created` settles first. inotify drops events when its queue overflows: watchdog
only logs that, so a log handler turns the warning into a full rescan.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from cairn.daemon.events import EventQueue
from cairn.ingest.pipeline import SKIP_DIRS

log = logging.getLogger(__name__)

# Only what the handler uses: our own reads (open, close-no-write) never wake the daemon.
EVENT_FILTER = [FileClosedEvent, FileMovedEvent, FileCreatedEvent, FileModifiedEvent,
                FileDeletedEvent, DirDeletedEvent, DirMovedEvent]

# Names editors and browsers write before the real file exists; never worth a look.
TEMP_SUFFIXES = (".swp", ".swx", ".tmp", ".part", ".crdownload", ".download", "~")


def ignored_path(path: str, root: str) -> bool:
    """Hidden files and folders, VCS/tool folders and editor temp files under a root."""
    rel = path[len(root):].lstrip(os.sep) if path.startswith(root) else path
    parts = rel.split(os.sep)
    if any(p.startswith(".") or p in SKIP_DIRS for p in parts if p):
        return True
    name = parts[-1] if parts else ""
    return name.endswith(TEMP_SUFFIXES) or name.startswith("#") or name == "4913"


class _Handler(FileSystemEventHandler):
    """Translates watchdog events for one root into EventQueue calls."""

    def __init__(self, root: str, queue: EventQueue, wake: Callable[[], None],
                 on_root_gone: Callable[[str], None],
                 ignore: Callable[[str], bool] = lambda p: False) -> None:
        self.root = root
        self.ignore = ignore
        self.queue = queue
        self.wake = wake
        self.on_root_gone = on_root_gone
        self.last_event: tuple[float, str, str] | None = None

    def _ok(self, path: str) -> bool:
        return not ignored_path(path, self.root) and not self.ignore(path)

    def on_any_event(self, event: FileSystemEvent) -> None:
        now = time.monotonic()
        src = os.fsdecode(event.src_path)
        q = self.queue
        if isinstance(event, FileClosedEvent):
            if self._ok(src):
                q.closed(src, now)
        elif isinstance(event, FileMovedEvent):
            dest = os.fsdecode(event.dest_path)
            if self._ok(dest):
                q.moved(src, dest, now)
            elif self._ok(src):
                q.deleted(src, now)  # renamed to a temp/hidden name: gone as far as we care
        elif isinstance(event, FileCreatedEvent):
            if self._ok(src):
                q.created(src, now)
        elif isinstance(event, FileModifiedEvent):
            if self._ok(src):
                q.modified(src, now)
        elif isinstance(event, FileDeletedEvent):
            if self._ok(src):
                q.deleted(src, now)
        elif isinstance(event, DirDeletedEvent):
            if src.rstrip(os.sep) == self.root.rstrip(os.sep):
                self.on_root_gone(self.root)
            q.dir_deleted(src, now)
        elif isinstance(event, DirMovedEvent):
            # The files inside arrive as their own moved events; a folder moved out of the
            # watched tree arrives as a DirDeletedEvent instead.
            return
        else:
            return
        self.last_event = (time.time(), type(event).__name__, src)
        self.wake()


class _OverflowAlarm(logging.Handler):
    """watchdog reports a dropped inotify queue only as a log warning: listen for it."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(level=logging.WARNING)
        self.on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if "overflow" in record.getMessage().lower():
                self.on_overflow()
        except Exception:  # noqa: BLE001 - a log handler must never raise
            pass


class Watcher:
    """One observer, a recursive watch per root (nested roots are covered by their parent)."""

    def __init__(self, queue: EventQueue, *, wake: Callable[[], None],
                 on_overflow: Callable[[], None], on_root_gone: Callable[[str], None],
                 observer_factory: Callable[[], Any] | None = None,
                 ignore: Callable[[str], bool] = lambda p: False) -> None:
        self.queue = queue
        self.ignore = ignore
        self.wake = wake
        self.on_root_gone = on_root_gone
        self._factory = observer_factory
        self.observer: Any = None
        self.handlers: dict[str, _Handler] = {}
        self.watches: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self._alarm = _OverflowAlarm(on_overflow)
        self._alarm_loggers = [logging.getLogger(n) for n in
                               ("watchdog.observers.inotify_c", "watchdog.observers.inotify")]

    @staticmethod
    def close_events_supported() -> bool:
        """inotify reports finished writes; FSEvents, kqueue and Windows do not."""
        return sys.platform.startswith("linux")

    def start(self) -> None:
        if self._factory is not None:
            self.observer = self._factory()
        else:
            from watchdog.observers import Observer

            self.observer = Observer()
        for lg in self._alarm_loggers:
            lg.addHandler(self._alarm)
        self.observer.daemon = True
        self.observer.start()

    def watch(self, roots: Sequence[Path]) -> None:
        """Watch each root that exists and is not already watched; remember why not."""
        paths = sorted({str(r) for r in roots}, key=len)
        for p in paths:
            if p in self.watches or any(p.startswith(w.rstrip(os.sep) + os.sep)
                                        for w in self.watches):
                continue
            if not os.path.isdir(p):
                self.errors[p] = "folder does not exist (watched once it appears)"
                continue
            handler = _Handler(p, self.queue, self.wake, self.on_root_gone, self.ignore)
            try:
                self.watches[p] = self.observer.schedule(handler, p, recursive=True,
                                                         event_filter=EVENT_FILTER)
            except OSError as e:
                # Trigger: inotify watch limit (ENOSPC) or permissions. Outcome: rescans only.
                hint = (" (raise fs.inotify.max_user_watches)" if e.errno == 28 else "")
                self.errors[p] = f"cannot watch: {e.strerror or e}{hint}; rescanned on schedule"
                log.error("cannot watch %s: %s%s", p, e.strerror or e, hint)
                continue
            self.handlers[p] = handler
            self.errors.pop(p, None)
            log.info("watching %s", p)

    def drop(self, root: str) -> None:
        """Stop watching a root whose folder went (from the main thread, not a handler)."""
        watch = self.watches.pop(root, None)
        self.handlers.pop(root, None)
        self.errors[root] = "folder was removed (watched again once it reappears)"
        if watch is not None and self.observer is not None:
            try:
                self.observer.unschedule(watch)
            except (KeyError, OSError, RuntimeError):
                pass

    def last_event(self) -> tuple[float, str, str] | None:
        events = [h.last_event for h in list(self.handlers.values()) if h.last_event]
        return max(events) if events else None

    def stop(self) -> None:
        for lg in self._alarm_loggers:
            lg.removeHandler(self._alarm)
        if self.observer is not None:
            try:
                self.observer.stop()
                self.observer.join(timeout=5)
            except RuntimeError:
                pass
            self.observer = None
