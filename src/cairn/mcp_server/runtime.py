"""What the tools share in one server process: the service (opened once, warmed in the
background), a one-at-a-time worker for it, and what each session told us about itself.

The store connection is not safe for concurrent use, so every service call runs in a worker
thread behind a one-slot limiter: the event loop keeps answering while a call runs, and calls
never interleave inside a transaction. Other processes (the daemon, the CLI, other agents'
servers) share the store through SQLite's WAL and short BEGIN IMMEDIATE writes.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from cairn.config import Settings
from cairn.errors import CairnError
from cairn.mcp_server import project as proj

log = logging.getLogger(__name__)

T = TypeVar("T")
ROOTS_TTL = 300.0  # seconds a session's roots are trusted without asking again
WARM_AFTER = 0.5  # seconds after start to warm up when no `initialized` notification came
REINFORCE_AFTER = 0.05  # seconds a recall's reinforcement waits, to go out after its answer


class _Sessions:
    """A dict keyed by strings or (weakly) by connection objects."""

    def __init__(self) -> None:
        self._named: dict[str, tuple[float, str | None]] = {}
        self._weak: weakref.WeakKeyDictionary[Any, tuple[float, str | None]] = \
            weakref.WeakKeyDictionary()

    def _of(self, key: Any) -> Any:
        return self._named if isinstance(key, str) else self._weak

    def get(self, key: Any) -> tuple[float, str | None] | None:
        try:
            return self._of(key).get(key)
        except TypeError:  # not weakly referenceable
            return None

    def __setitem__(self, key: Any, value: tuple[float, str | None]) -> None:
        try:
            self._of(key)[key] = value
        except TypeError:
            pass

    def clear(self) -> None:
        self._named.clear()
        self._weak.clear()


class Runtime:
    """One per server process; `run` is the only way tools reach the service."""

    def __init__(self, settings: Settings, *, transport: str = "stdio",
                 memory_factory: Callable[[], Any] | None = None,
                 cwd_project: str | bool | None = True) -> None:
        self.settings = settings
        self.transport = transport
        self._factory = memory_factory
        self._memory: Any = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._lock = threading.Lock()
        # session -> (when asked, project); connection objects are held weakly.
        self._roots: Any = _Sessions()
        # Over stdio the server runs where the agent was started, so its working directory
        # names the project; a shared HTTP server's directory says nothing about a client.
        if cwd_project is True:
            self.cwd_project = proj.from_cwd() if transport == "stdio" else None
        else:
            self.cwd_project = cwd_project or None
        self.token_budget = int(settings.get("recall", "token_budget"))
        self.warmed = threading.Event()
        self._handshake: anyio.Event | None = None
        # Ids recall returned, reinforced after the answer is sent (see reinforce_later).
        self._reinforce: list[str] = []
        self._reinforce_lock = threading.Lock()
        self._kick: anyio.Event | None = None
        self._looping = False
        self._handshook = False

    # ------------------------------------------------------------ the service

    @property
    def memory(self) -> Any:
        with self._lock:
            if self._memory is None:
                if self._factory is not None:
                    self._memory = self._factory()
                else:
                    from cairn.service import Memory

                    self._memory = Memory(self.settings)
            return self._memory

    def _warm(self) -> None:
        """Open the store and load the embedder before the first call needs them."""
        try:
            m = self.memory
            m.store  # noqa: B018 - opens and migrates the store
            m.embedder.embed(["warm up"])
            from cairn.extraction.rules import RulesExtractor  # noqa: F401 - labels remember()
        except CairnError as e:
            # The first tool call reports it to the agent; nothing to do here.
            log.warning("cairn mcp: %s", e)
        except Exception:
            log.exception("warming up the service failed")
        finally:
            self.warmed.set()

    async def warm(self) -> None:
        await anyio.to_thread.run_sync(self._warm, limiter=self._worker())

    async def warm_after_handshake(self) -> None:
        """Warm once the client has read our answer to `initialize` (its `initialized`
        notification), or after WARM_AFTER seconds without one (a client of the stateless 2026
        protocol sends none).

        Why: loading the store and two ONNX graphs takes the GIL for ~0.3 s; started at once,
        it competed with the SDK answering `initialize` (start to ready 650 -> 800 ms here).
        """
        self._handshake = event = anyio.Event()  # this loop's (tests run several loops)
        if not self._handshook:
            with anyio.move_on_after(WARM_AFTER):
                await event.wait()
        await self.warm()

    def handshake_done(self) -> None:
        self._handshook = True
        if self._handshake is not None:
            self._handshake.set()

    def _worker(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        return self._limiter

    async def run(self, fn: Callable[[Any], T]) -> T:
        """Run `fn(memory)` in the worker; a CairnError becomes the tool's error message."""
        from mcp.server.mcpserver.exceptions import ToolError

        def call() -> T:
            m = self.memory
            if self._reinforce and not self._looping:
                self._flush_reinforce(m)
            return fn(m)

        try:
            return await anyio.to_thread.run_sync(call, limiter=self._worker())
        except CairnError as e:
            raise ToolError(str(e)) from None

    # ------------------------------------------------------------ reinforcement

    def reinforce_later(self, ids: list[str]) -> None:
        """Count a recall of `ids` once its answer is on its way (from the worker thread).

        Why: reinforcing is a write transaction (~0.3 ms) that the agent does not wait for;
        done after the answer, and batched over a burst of recalls, it leaves the critical
        path. close() writes what is still pending.
        """
        if ids:
            with self._reinforce_lock:
                self._reinforce.extend(ids)

    def kick(self) -> None:
        """Wake the reinforcement loop (from the event loop, after a tool call)."""
        if self._reinforce and self._kick is not None:
            self._kick.set()

    async def reinforce_loop(self) -> None:
        """Write pending reinforcement shortly after recalls, for as long as the session that
        started it lasts (over HTTP, one session's loop serves all; without one, the next
        call writes what is pending before its own work)."""
        if self._looping:
            return
        self._looping = True
        try:
            while True:
                self._kick = anyio.Event()
                await self._kick.wait()
                await anyio.sleep(REINFORCE_AFTER)
                await self.run(self._flush_reinforce)
        finally:
            self._looping = False
            self._kick = None

    def _flush_reinforce(self, m: Any) -> None:
        with self._reinforce_lock:
            ids, self._reinforce = self._reinforce, []
        if ids:
            m.reinforce(ids)

    def close(self) -> None:
        with self._lock:
            if self._memory is not None:
                try:
                    self._flush_reinforce(self._memory)
                except Exception:  # a nicety; never block a shutdown on it
                    log.warning("recall reinforcement lost at shutdown", exc_info=True)
                self._memory.close()
                self._memory = None

    # ------------------------------------------------------------ sessions

    def session_key(self, ctx: Any) -> Any:
        """Which client a request belongs to, or None when that cannot be told.

        A stdio process serves one client. Over HTTP a session has its id header; in process,
        the connection object (weakly held) identifies it.
        """
        if self.transport == "stdio":
            return "stdio"
        try:
            headers = ctx.headers
        except (ValueError, AttributeError):
            headers = None
        if headers is not None:
            sid = headers.get("mcp-session-id")
            return f"http:{sid}" if sid else None
        try:
            return getattr(ctx.session, "_connection", None)
        except (ValueError, AttributeError):
            return None

    def cached_roots_project(self, ctx: Any) -> tuple[str, str | None] | None:
        key = self.session_key(ctx)
        got = self._roots.get(key) if key is not None else None
        if got is None or time.monotonic() - got[0] > ROOTS_TTL:
            return None
        return ("roots", got[1])

    def remember_roots(self, ctx: Any, uris: list[str]) -> str | None:
        """The project the client's roots name (cwd's when none is in git), kept for the session."""
        found = proj.from_roots(uris)
        if found is None:
            found = self.cwd_project
        key = self.session_key(ctx)
        if key is not None:
            self._roots[key] = (time.monotonic(), found)
        log.info("roots %d -> project %s", len(uris), found)
        return found

    def forget_roots(self) -> None:
        """The client said its roots changed: ask again on the next call."""
        self._roots.clear()

    @staticmethod
    def client_has_roots(ctx: Any) -> bool:
        try:
            caps = ctx.client_capabilities
        except (ValueError, AttributeError):
            return False
        return caps is not None and caps.roots is not None

    @staticmethod
    def client_name(ctx: Any) -> str:
        """The client's own name (claude-code, cursor, …), for the memory's source uri."""
        try:
            params = ctx.session.client_params
        except (ValueError, AttributeError):
            params = None
        name = params.client_info.name if params is not None and params.client_info else None
        return "".join(c if c.isalnum() or c in "-_." else "-" for c in (name or "unknown"))[:64]
