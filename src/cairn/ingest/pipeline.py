"""The ingest pipeline: file → adapter → privacy filter → episodes → extractor → resolver → store.

Embeddings and extraction run outside the write lock; each chunk of episodes is then written in
one short transaction, so other writers wait milliseconds, not seconds, and a kill at any moment
leaves whole chunks that a rerun skips (ingest is idempotent by source, locator and content hash).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cairn.errors import BadInput
from cairn.extraction.base import Extractor, Outcome, extractor_id, outcomes_of
from cairn.ingest import privacy
from cairn.ingest.resolver import fact_hash, resolve
from cairn.models import EpisodeDraft, FactDraft, ParsedSource
from cairn.store import Store, content_hash, iso, utcnow, vectors
from cairn.store import records as r

log = logging.getLogger(__name__)

CHUNK = 256
MB = 1024 * 1024
# Per adapter: the largest file read. A 10 MB markdown "note" is a dump or a log, not a note.
MAX_BYTES = {"note": 10 * MB, "chat": 512 * MB, "agent_session": 512 * MB, "screenshot": 64 * MB}
SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".obsidian", ".trash", "node_modules", "__pycache__",
                       ".venv", ".cache", ".Trash"})

# (kind, module) in the order they are asked whether a file is theirs.
ADAPTERS: list[tuple[str, str]] = [
    ("chat", "cairn.ingest.sources.chat_jsonl"),
    ("chat", "cairn.ingest.sources.chat_exports"),
    ("agent_session", "cairn.ingest.sources.agent_sessions"),
    ("screenshot", "cairn.ingest.sources.screenshots"),
    ("note", "cairn.ingest.sources.notes"),
]


@dataclass
class FileResult:
    path: str
    status: str  # ingested, unchanged, skipped, error
    reason: str | None = None
    episodes_added: int = 0
    episodes_removed: int = 0
    facts_added: int = 0
    facts_merged: int = 0
    facts_superseded: int = 0
    facts_retracted: int = 0
    records_skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class IngestReport:
    files: list[FileResult] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        t: dict[str, int] = {"files": len(self.files)}
        for st in ("ingested", "unchanged", "skipped", "error"):
            t[f"files_{st}"] = sum(1 for f in self.files if f.status == st)
        for k in ("episodes_added", "episodes_removed", "facts_added", "facts_merged",
                  "facts_superseded", "facts_retracted"):
            t[k] = sum(getattr(f, k) for f in self.files)
        t["records_skipped"] = sum(len(f.records_skipped) for f in self.files)
        return t

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.totals(),
            "errors": [{"path": f.path, "reason": f.reason} for f in self.files
                       if f.status == "error"],
            "skipped": [{"path": f.path, "reason": f.reason} for f in self.files
                        if f.status == "skipped"],
            "file_results": [f.to_dict() for f in self.files],
        }


Progress = Callable[[str, int, int | None], None]  # (what, advance, total)


def adapter_for(path: Path, head: bytes) -> tuple[str, Any] | None:
    for kind, modname in ADAPTERS:
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        try:
            if mod.matches(path, head):
                return kind, mod
        except Exception:  # a sniffing bug must not stop ingest
            log.exception("adapter %s failed to sniff %s", modname, path)
    return None


def walk(paths: Iterable[Path]) -> Iterator[tuple[Path, bool, str | None]]:
    """Files under the paths: (path, named explicitly, error). Symlink loops are cut."""
    seen_dirs: set[tuple[int, int]] = set()
    for p in paths:
        p = p.expanduser()
        if not p.exists() and not p.is_symlink():
            yield p, True, "no such file or directory"
            continue
        if p.is_symlink() and not p.exists():
            yield p, True, "broken symlink"
            continue
        if p.is_file():
            yield p, True, None
            continue
        if not p.is_dir():
            yield p, True, "not a regular file or folder"
            continue
        for root, dirs, files in os.walk(p, followlinks=True, onerror=None):
            try:
                st = os.stat(root)
            except OSError as e:
                yield Path(root), False, f"cannot read folder ({e.strerror})"
                dirs[:] = []
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                yield Path(root), False, "symlink loop (folder already visited)"
                dirs[:] = []
                continue
            seen_dirs.add(key)
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                yield Path(root) / name, False, None


def embed_text(d: EpisodeDraft) -> str:
    parts = []
    if d.context and d.speaker is None:
        parts.append(d.context)
    parts.append(f"{d.speaker}: {d.text}" if d.speaker else d.text)
    return "\n".join(parts)


class Ingestor:
    """Turns files (or drafts) into stored episodes and facts."""

    def __init__(self, store: Store, embedder: Any, extractor: Extractor,
                 exclude: Sequence[str] = ()) -> None:
        self.store = store
        self.embedder = embedder
        self.extractor = extractor
        self.exclude = list(exclude)
        self.model_ready = False

    def _ensure_model(self) -> None:
        if not self.model_ready:
            vectors.ensure_model(self.store.conn, self.embedder.model_id,
                                 self.embedder.dimensions, iso(utcnow()))
            self.model_ready = True

    # ------------------------------------------------------------ files

    def ingest_paths(self, paths: Sequence[Path], progress: Progress | None = None) -> IngestReport:
        report = IngestReport()
        found = list(walk(paths))
        if progress:
            progress("files", 0, len(found))
        for path, explicit, err in found:
            if err:
                report.files.append(FileResult(str(path), "error", err))
            else:
                res = self.ingest_file(path, explicit=explicit, progress=progress)
                if res is not None:
                    report.files.append(res)
            if progress:
                progress("files", 1, None)
        return report

    def ingest_file(self, path: Path, *, explicit: bool = True,
                    progress: Progress | None = None) -> FileResult | None:
        """Ingest one file. Files of unknown type found in folders are ignored (None)."""
        shown = str(path)
        try:
            path = path.resolve()
        except (OSError, RuntimeError) as e:
            return FileResult(shown, "error", f"cannot resolve path ({e})")
        import fnmatch

        if any(fnmatch.fnmatch(str(path), pat) for pat in self.exclude):
            return FileResult(shown, "skipped", "excluded by [privacy] exclude")
        try:
            st = path.stat()
            if not path.is_file():
                return FileResult(shown, "error", "not a regular file")
            with open(path, "rb") as fh:
                head = fh.read(4096)
        except OSError as e:
            return FileResult(shown, "error", f"cannot read ({e.strerror or e})")
        picked = adapter_for(path, head)
        if picked is None:
            if explicit:
                suffix = path.suffix or "(no extension)"
                return FileResult(shown, "error", f"unsupported file type {suffix}")
            return None
        kind, mod = picked
        limit = MAX_BYTES.get(kind, 64 * MB)
        if st.st_size > limit:
            return FileResult(shown, "error",
                              f"too large ({st.st_size / MB:.1f} MB > {limit // MB} MB for a {kind})")
        if st.st_size == 0:
            return FileResult(shown, "skipped", "empty file")
        uri = str(path)
        conn = self.store.conn
        if r.tombstoned(conn, "uri", [uri]):
            return FileResult(shown, "skipped", "forgotten (cairn forget --source); not re-read")
        try:
            data = path.read_bytes()
        except OSError as e:
            return FileResult(shown, "error", f"cannot read ({e.strerror or e})")
        fhash = content_hash_bytes(data)
        src = r.get_source(conn, uri)
        if src and src["content_hash"] == fhash and src["status"] == "live":
            return FileResult(shown, "unchanged")
        try:
            parsed: ParsedSource = mod.parse(path, data, mtime=st.st_mtime)
        except BadInput as e:
            return FileResult(shown, "error", str(e))
        except (ValueError, KeyError, TypeError, IndexError, RecursionError, MemoryError) as e:
            # Trigger: an adapter choked on malformed input. Outcome: one line, nothing stored lost.
            log.warning("adapter %s failed on %s: %r", kind, path, e)
            return FileResult(shown, "error", f"cannot parse as {kind} ({type(e).__name__}: {e})")
        res = FileResult(shown, "ingested", records_skipped=list(parsed.skipped))
        self.store_episodes(uri, parsed.kind, parsed.episodes, remove_stale=True, result=res,
                            file_hash=fhash, mtime=st.st_mtime, size=st.st_size,
                            progress=progress)
        return res

    # ------------------------------------------------------------ episodes

    def store_episodes(
        self, uri: str, kind: str, drafts: Sequence[EpisodeDraft], *, remove_stale: bool,
        result: FileResult, file_hash: str | None = None, mtime: float | None = None,
        size: int | None = None, facts_override: Sequence[list[FactDraft]] | None = None,
        origin: str = "extracted", project: str | None = None, tags: tuple[str, ...] = (),
        pinned: bool = False, quarantine_injections: bool = True,
        progress: Progress | None = None, read_offset: int = 0,
    ) -> list[int]:
        """Store drafts as episodes of one source; returns the ids of facts written."""
        self._ensure_model()
        conn = self.store.conn
        now = iso(utcnow())
        src = r.get_source(conn, uri)
        redacted: list[tuple[EpisodeDraft, str]] = []
        for d in drafts:
            text, _ = privacy.redact(d.text)
            ctx, _ = privacy.redact(d.context)
            redacted.append((EpisodeDraft(text=text, locator=d.locator, speaker=d.speaker,
                                          role=d.role, occurred_at=d.occurred_at, context=ctx),
                             content_hash(text)))
        keys = {} if not src else r.episode_keys(
            conn, src["id"], None if remove_stale else [h for _, h in redacted])
        prepared: list[tuple[EpisodeDraft, str, bool, int]] = []  # draft, hash, quarantined, idx
        wanted: set[tuple[str, str]] = set()
        for i, (d, h) in enumerate(redacted):
            wanted.add((d.locator, h))
            if (d.locator, h) in keys:
                continue
            quarantined = quarantine_injections and privacy.looks_like_injection(d.text)
            prepared.append((d, h, quarantined, i))
        gone = r.tombstoned(conn, "content", [p[1] for p in prepared])
        if gone:
            result.records_skipped.append(f"{sum(p[1] in gone for p in prepared)} forgotten")
            prepared = [p for p in prepared if p[1] not in gone]
        stale = [eid for key, eid in keys.items() if key not in wanted] if remove_stale else []
        fact_ids: list[int] = []
        if progress and prepared:
            progress("episodes", 0, len(prepared))
        source_id: int | None = src["id"] if src else None
        for start in range(0, max(len(prepared), 1), CHUNK):
            chunk = prepared[start:start + CHUNK]
            ep_drafts = [p[0] for p in chunk]
            facts, outcomes = self.extract_facts(ep_drafts, chunk, facts_override)
            # A remembered text is its own fact: its episode is searched through that fact
            # (migration m004), unless the fact turns out to be an older one in other words.
            searchable = [not (origin == "typed" and len(fl) == 1 and fl[0].text == d.text)
                          for d, fl in zip(ep_drafts, facts, strict=True)]
            ep_vecs = self.embedder.embed([embed_text(d) for d in ep_drafts]) if chunk else None
            fact_vecs = self._embed_facts(facts, ep_drafts, ep_vecs)
            with self.store.transaction():
                if source_id is None:
                    source_id = r.upsert_source(conn, uri, kind, now)
                ids: list[int] = []
                for (d, h, q, _), searched in zip(chunk, searchable, strict=True):
                    trust = r.episode_trust(kind, d.role)
                    ids.append(r.insert_episode(conn, source_id, d, h, trust, q, now,
                                                searchable=searched))
                if ids and ep_vecs is not None:
                    rows = [n for n, searched in enumerate(searchable) if searched]
                    if rows:
                        vectors.put(conn, "episodes", [ids[n] for n in rows], ep_vecs[rows])
                    conn.executemany(
                        "update episodes set extracted_by = ?, extraction_error = ? where id = ?",
                        [(o.extractor, o.error, i) for o, i in zip(outcomes, ids, strict=True)])
                if failed := sum(1 for o in outcomes if o.error):
                    self.store.bump("extraction_errors", failed)
                for n, (eid, (d, _h, q, _), fl, out) in enumerate(
                        zip(ids, chunk, facts, outcomes, strict=True)):
                    third_party_only = d.role == "third_party"
                    for f in fl:
                        res = resolve(conn, f, episode_id=eid, episode_time=d.occurred_at,
                                      extractor=out.extractor, trust=r.episode_trust(kind, d.role),
                                      now=now, origin=origin, quarantine=q or third_party_only,
                                      project=project, tags=tags, pinned=pinned)
                        fact_ids.append(res.fact_id)
                        if not searchable[n] and res.action == "merge" and ep_vecs is not None:
                            # merged into a fact worded differently: the episode's own words
                            # must stay findable
                            said = conn.execute("select text from facts where id = ?",
                                                (res.fact_id,)).fetchone()
                            if said is None or said[0] != d.text:
                                conn.execute("update episodes set searchable = 1 where id = ?",
                                             (eid,))
                                vectors.put(conn, "episodes", [eid], ep_vecs[n][None, :])
                        if res.action in ("add", "supersede"):
                            vec = fact_vecs.get(fact_hash(f.text))
                            if vec is not None:
                                vectors.put(conn, "facts", [res.fact_id], vec[None, :])
                            result.facts_added += 1
                            result.facts_superseded += len(res.superseded)
                        elif res.action == "merge":
                            result.facts_merged += 1
                result.episodes_added += len(ids)
                last = start + CHUNK >= len(prepared)
                if last:
                    if stale:
                        result.facts_retracted += len(r.delete_episodes(conn, stale))
                        result.episodes_removed += len(stale)
                    r.mark_source_read(conn, source_id, content_hash=file_hash, mtime=mtime,
                                       size=size, now=now, read_offset=read_offset)
            if progress and chunk:
                progress("episodes", len(chunk), None)
        return fact_ids

    def extract_facts(self, drafts: Sequence[EpisodeDraft],
                      chunk: Sequence[tuple[Any, ...]] = (),
                      override: Sequence[list[FactDraft]] | None = None,
                      ) -> tuple[list[list[FactDraft]], list[Outcome]]:
        """Facts for each draft, and how each episode's facts were made (which extractor, and
        the error when the configured one failed). An extractor that raises costs the facts,
        never the episodes: they are stored, the error recorded on them and counted."""
        if not drafts:
            return [], []
        if override is not None:
            return [list(override[p[3]]) for p in chunk], [Outcome("user@1")] * len(drafts)
        ex_id = extractor_id(self.extractor)
        try:
            out = self.extractor.extract(drafts)
            if len(out) != len(drafts):
                raise RuntimeError(f"extractor returned {len(out)} results for {len(drafts)}")
            return out, outcomes_of(self.extractor, len(drafts))
        except Exception as e:  # noqa: BLE001 - never drop an episode for an extractor fault
            log.warning("extraction failed for %d episodes: %r", len(drafts), e)
            return [[] for _ in drafts], [Outcome(ex_id, f"{type(e).__name__}: {e}"[:300])] * len(drafts)

    def _embed_facts(self, facts: list[list[FactDraft]], drafts: Sequence[EpisodeDraft] = (),
                     ep_vecs: np.ndarray | None = None) -> dict[str, np.ndarray]:
        texts: dict[str, str] = {}
        reuse: dict[str, np.ndarray] = {}
        for i, fl in enumerate(facts):
            for f in fl:
                h = fact_hash(f.text)
                # Trigger: a one-fact episode (a short message, a typed memory). Outcome: the fact
                # is that episode in the third person; its vector is the episode's, not re-embedded
                # (this halves ingest time on chats).
                if len(fl) == 1 and ep_vecs is not None and i < len(drafts) \
                        and _one_sentence(drafts[i].text):
                    reuse.setdefault(h, ep_vecs[i])
                else:
                    texts.setdefault(h, f.text)
        conn = self.store.conn
        hashes = list(texts)
        known: set[str] = set()
        for i in range(0, len(hashes), 500):
            part = hashes[i:i + 500]
            known.update(x[0] for x in conn.execute(
                f"select content_hash from facts where content_hash in ({','.join('?' * len(part))})",
                part))
        todo = [h for h in hashes if h not in known]
        out = {h: v for h, v in reuse.items() if h not in texts}
        if todo:
            vecs = self.embedder.embed([texts[h] for h in todo])
            out.update({h: vecs[i] for i, h in enumerate(todo)})
        return out

    def backfill_vectors(self, batch: int = 256) -> int:
        """Embed rows that have no vector (after a model change or an interrupted run)."""
        self._ensure_model()
        conn = self.store.conn
        done = 0
        for table in vectors.TABLES:
            while ids := vectors.missing(conn, table, batch):
                if table == "episodes":
                    rows = conn.execute(
                        f"select id, text, speaker, context from episodes where id in"
                        f" ({','.join('?' * len(ids))})", ids).fetchall()
                    texts = [embed_text(EpisodeDraft(text=x[1], locator="", speaker=x[2],
                                                     context=x[3])) for x in rows]
                else:
                    rows = conn.execute(
                        f"select id, text from facts where id in ({','.join('?' * len(ids))})",
                        ids).fetchall()
                    texts = [x[1] for x in rows]
                vecs = self.embedder.embed(texts)
                with self.store.transaction():
                    vectors.put(conn, table, [x[0] for x in rows], vecs)
                done += len(rows)
        return done

    # ------------------------------------------------------------ watched folders (the daemon)

    def known_sources(self, root: Path) -> dict[str, tuple[float | None, int | None, str,
                                                           str | None]]:
        """Sources stored under a folder: uri -> (mtime, size, status, content_hash)."""
        prefix = str(root).rstrip(os.sep) + os.sep
        upper = prefix[:-1] + chr(ord(os.sep) + 1)  # every string that starts with prefix
        rows = self.store.conn.execute(
            "select uri, mtime, size, status, content_hash from sources"
            " where uri >= ? and uri < ?", (prefix, upper))
        return {x[0]: (x[1], x[2], x[3], x[4]) for x in rows}

    def sniff(self, path: Path) -> str | None:
        """The kind of source a file is (note, chat, agent_session, screenshot), or None."""
        try:
            with open(path, "rb") as fh:
                head = fh.read(4096)
        except OSError:
            return None
        picked = adapter_for(path, head)
        return picked[0] if picked else None

    def ingest_watched(self, path: Path, *, kinds: frozenset[str] | None = None,
                       progress: Progress | None = None) -> FileResult | None:
        """What the daemon calls for a file that changed under a watched folder.

        A file whose mtime and size match its stored source is not read again; agent session
        logs are read from where the last read stopped; a file that comes back after being
        deleted is read again in full. None: not a kind of file this folder is watched for.
        """
        shown = str(path)
        try:
            path = path.resolve()
            st = path.stat()
        except FileNotFoundError:
            # Trigger: the file went between the event and now. Outcome: it is a delete.
            return self.source_deleted(path)
        except (OSError, RuntimeError) as e:
            return FileResult(shown, "error", f"cannot read ({getattr(e, 'strerror', None) or e})")
        uri = str(path)
        conn = self.store.conn
        src = r.get_source(conn, uri)
        if (src and src["status"] == "live" and src["content_hash"]
                and src["mtime"] == st.st_mtime and src["size"] == st.st_size):
            return FileResult(shown, "unchanged")
        kind = self.sniff(path)
        if kind is None or (kinds is not None and kind not in kinds):
            return None
        if src and src["status"] == "deleted":
            with self.store.transaction():
                conn.execute("update sources set status = 'live', content_hash = null,"
                             " read_offset = 0 where id = ?", (src["id"],))
        if kind == "agent_session":
            res = self.ingest_growing(path, shown=shown, progress=progress)
        else:
            res = self.ingest_file(path, explicit=False, progress=progress)
        if res is not None and res.status == "unchanged":
            # Touched, not edited: remember the new mtime so the next rescan skips it unread.
            with self.store.transaction():
                conn.execute("update sources set mtime = ?, size = ? where uri = ?",
                             (st.st_mtime, st.st_size, uri))
        return res

    def ingest_growing(self, path: Path, *, shown: str | None = None,
                       progress: Progress | None = None) -> FileResult | None:
        """Read an agent session log incrementally: only the lines after the last read.

        The stored hash of the file at the last read checks that the file only grew; a file
        that was rewritten is read again from the start, dropping episodes that went.
        """
        import fnmatch

        shown = shown or str(path)
        try:
            path = path.resolve()
        except (OSError, RuntimeError) as e:
            return FileResult(shown, "error", f"cannot resolve path ({e})")
        if any(fnmatch.fnmatch(str(path), pat) for pat in self.exclude):
            return FileResult(shown, "skipped", "excluded by [privacy] exclude")
        uri = str(path)
        conn = self.store.conn
        if r.tombstoned(conn, "uri", [uri]):
            return FileResult(shown, "skipped", "forgotten (cairn forget --source); not re-read")
        try:
            st = path.stat()
            if st.st_size > MAX_BYTES["agent_session"]:
                return FileResult(shown, "error", f"too large ({st.st_size / MB:.1f} MB > "
                                  f"{MAX_BYTES['agent_session'] // MB} MB for an agent_session)")
            data = path.read_bytes()
        except OSError as e:
            return FileResult(shown, "error", f"cannot read ({e.strerror or e})")
        if not data.strip():
            return FileResult(shown, "skipped", "empty file")
        mod = importlib.import_module("cairn.ingest.sources.agent_sessions")
        fhash = content_hash_bytes(data)
        src = r.get_source(conn, uri)
        offset = 0
        if src and src["status"] == "live" and src["content_hash"]:
            if src["content_hash"] == fhash:
                return FileResult(shown, "unchanged")
            old = int(src["size"] or 0)
            if (0 < int(src["read_offset"]) <= old <= len(data)
                    and content_hash_bytes(data[:old]) == src["content_hash"]):
                offset = int(src["read_offset"])
        try:
            parsed, end = mod.parse_from(path, data, offset, mtime=st.st_mtime)
        except BadInput as e:
            return FileResult(shown, "error", str(e))
        except (ValueError, KeyError, TypeError, IndexError, RecursionError, MemoryError) as e:
            log.warning("adapter agent_session failed on %s: %r", path, e)
            return FileResult(shown, "error",
                              f"cannot parse as agent_session ({type(e).__name__}: {e})")
        res = FileResult(shown, "ingested", records_skipped=list(parsed.skipped))
        self.store_episodes(uri, "agent_session", parsed.episodes, remove_stale=offset == 0,
                            result=res, file_hash=fhash, mtime=st.st_mtime, size=len(data),
                            read_offset=end, progress=progress)
        return res

    def source_deleted(self, path: Path | str) -> FileResult:
        """A watched file went: remove its episodes, retract the facts only it supported
        (a fact another source supports stays) and mark the source deleted."""
        uri = str(Path(path).resolve())
        conn = self.store.conn
        res = FileResult(str(path), "deleted")
        src = r.get_source(conn, uri)
        if src is None or src["status"] == "deleted":
            res.status = "unchanged"
            return res
        ids = [x[0] for x in conn.execute(
            "select id from episodes where source_id = ? order by id", (src["id"],))]
        # Chunked so a deleted export of 100k messages does not hold the write lock for
        # seconds; the source is marked deleted with the last chunk, so a kill half-way
        # leaves it live and the next scan finishes the job.
        for start in range(0, max(len(ids), 1), CHUNK * 4):
            part = ids[start:start + CHUNK * 4]
            with self.store.transaction():
                res.facts_retracted += len(r.delete_episodes(conn, part))
                res.episodes_removed += len(part)
                if start + CHUNK * 4 >= len(ids):
                    conn.execute(
                        "update sources set status = 'deleted', content_hash = null, mtime = null,"
                        " size = null, read_offset = 0, updated_at = ? where id = ?",
                        (iso(utcnow()), src["id"]))
        return res

    def source_moved(self, old: Path | str, new: Path | str) -> bool:
        """A watched file was renamed: point its source at the new path, so its episodes and
        facts keep their ids. False when there is nothing to move (the old path is not a live
        source, or the new one already is)."""
        old_uri, new_uri = str(Path(old).resolve()), str(Path(new).resolve())
        if old_uri == new_uri:
            return False
        conn = self.store.conn
        if r.tombstoned(conn, "uri", [new_uri]):
            return False
        with self.store.transaction():
            src = r.get_source(conn, old_uri)
            if src is None or src["status"] != "live":
                return False
            dst = r.get_source(conn, new_uri)
            if dst is not None:
                if dst["status"] == "live":
                    return False
                conn.execute("delete from sources where id = ?", (dst["id"],))
            conn.execute("update sources set uri = ?, updated_at = ? where id = ?",
                         (new_uri, iso(utcnow()), src["id"]))
        return True


def _one_sentence(text: str) -> bool:
    return len(text) < 300 and text.count(". ") + text.count("! ") + text.count("? ") == 0


def content_hash_bytes(data: bytes) -> str:
    import hashlib

    return "b2:" + hashlib.blake2b(data, digest_size=16).hexdigest()
