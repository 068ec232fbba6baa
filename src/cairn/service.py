"""remember / recall / forget / ingest: the one API that cli, daemon and mcp_server call."""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from cairn.config import Settings
from cairn.errors import BadInput, CairnError, NotFound
from cairn.ingest.pipeline import FileResult, Ingestor, IngestReport, Progress
from cairn.models import EpisodeDraft, FactDraft, Hit, SourceRef
from cairn.querytime import parse_as_of, window
from cairn.store import Store, iso, utcnow, vectors
from cairn.store import records as r
from cairn.store import search as s

log = logging.getLogger(__name__)

RRF_K = 60
CANDIDATES = 40   # per search list, before fusion
FIRST_PASS = 100 # binary-quantized candidates rescored in float32 (sqlite-vec cost grows with it)
QUERY_VECTORS_KEPT = 256  # recent query embeddings a long-lived process keeps (1.5 kB each)
MIN_VECTOR_SIM = 0.12  # a vector-only candidate below this is noise, not a memory
ID_RE = re.compile(r"^([fe])(\d+)$")
REPLY_FROM_TOP = 10     # questions among the candidates whose reply is lifted
REPLY_SHARE = 0.5       # share of a question's fused score its reply receives
SPEAKER_BOOST = 1.15    # the query names who said it ("what did Ana say about …")
QUESTION_FACTOR = 0.85
GROUP_SHARE = 0.3       # a fact and its one episode both matching: the second adds this share  # a message that only asks is rarely the memory wanted
_SENTENCE_END = re.compile(r"[.!…](?:\s|$)")


def _is_question(text: str) -> bool:
    return "?" in text


def _only_questions(text: str) -> bool:
    """No statement in it: every sentence ends with a question mark (or is a short interjection)."""
    statements = [x for x in _SENTENCE_END.split(text)
                  if len(x.split()) > 3 and "?" not in x]
    return not statements


@dataclass
class RecallResult:
    query: str
    hits: list[Hit]
    explain: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "hits": [h.to_dict(self.explain) for h in self.hits]}


@dataclass
class ForgetPlan:
    facts: list[dict[str, Any]] = field(default_factory=list)
    episodes: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.facts or self.episodes or self.sources)

    def to_dict(self) -> dict[str, Any]:
        return {"facts": self.facts, "episodes": self.episodes, "sources": self.sources}


def parse_id(value: str) -> tuple[str, int]:
    m = ID_RE.match(value.strip().lower())
    if not m:
        raise BadInput(f"not a memory id: {value!r} (ids look like f12 or e34, as recall shows)")
    return ("fact" if m.group(1) == "f" else "episode"), int(m.group(2))


class Memory:
    """The service: a store, an embedder and an extractor, loaded when first needed."""

    def __init__(self, settings: Settings, *, embedder: Any = None, extractor: Any = None,
                 store: Store | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._extractor = extractor
        self._store = store
        self._ingestor: Ingestor | None = None
        self._recalls = 0
        self._query_vectors: OrderedDict[str, Any] = OrderedDict()
        # [(worker, read-only connection)] for recall's FTS passes; False once they failed to open.
        self._side: list[tuple[Any, Any]] | bool | None = None

    # ------------------------------------------------------------ lazy parts

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.settings.db_path)
        return self._store

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from cairn.extraction.embeddings import load_embedder

            self._embedder = load_embedder(self.settings)
        return self._embedder

    @property
    def extractor(self) -> Any:
        if self._extractor is None:
            from cairn.extraction.registry import load_extractor

            self._extractor = load_extractor(self.settings)
        return self._extractor

    @property
    def ingestor(self) -> Ingestor:
        if self._ingestor is None:
            self._ingestor = Ingestor(self.store, self.embedder, self.extractor,
                                      exclude=self.settings.get("privacy", "exclude"))
        return self._ingestor

    def _side_readers(self) -> list[tuple[Any, Any]] | None:
        """Two worker threads, each with a read-only connection of its own, from a process's
        second recall on (a one-shot CLI recall does not pay for them); None if they cannot
        be had."""
        self._recalls += 1
        if self._recalls < 2 or self._side is False:
            return None
        if self._side is None:
            from concurrent.futures import ThreadPoolExecutor

            from cairn.store.db import connect

            side = []
            try:
                for table in ("facts", "episodes"):
                    reader = connect(self.settings.db_path, migrate=False, readonly=True)
                    side.append((ThreadPoolExecutor(1, thread_name_prefix=f"cairn-fts-{table}"),
                                 reader))
            except Exception:  # a speed-up only: recall works without it
                log.debug("no side readers for recall", exc_info=True)
                for pool, reader in side:
                    pool.shutdown()
                    reader.close()
                self._side = False
                return None
            self._side = side
        return self._side  # type: ignore[return-value]

    def close(self) -> None:
        if isinstance(self._side, list):
            for pool, reader in self._side:
                pool.shutdown(wait=True)
                reader.close()
        self._side = None
        self._recalls = 0
        if self._store is not None:
            self._store.close()
            self._store = None
            self._ingestor = None

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ remember

    def remember(self, text: str, *, tags: Sequence[str] = (), project: str | None = None,
                 pin: bool = False, origin: str = "cli", client: str | None = None) -> dict[str, Any]:
        """Store one fact typed by the user (cli) or an agent (mcp)."""
        from cairn.ingest.normalise import clean_text
        from cairn.ingest.privacy import looks_like_injection, redact

        text = clean_text(text)
        if not text:
            raise BadInput("nothing to remember: the text is empty")
        if len(text) > 4000:
            raise BadInput(f"text too long to remember ({len(text)} characters > 4000);"
                           " save it in a note and run 'cairn ingest'")
        text, _ = redact(text)
        uri = "cli:" if origin == "cli" else f"mcp:{client or 'unknown'}"
        kind = "cli" if origin == "cli" else "mcp"
        now = utcnow()
        from cairn.store import content_hash

        # The same words remembered for two projects are two memories, one in each scope.
        key = text if project is None else f"{project}\x00{text}"
        draft = EpisodeDraft(text=text, locator="h:" + content_hash(key)[3:19], speaker=None,
                             role="user", occurred_at=iso(now))
        fact = self._typed_fact(draft)
        # Agents can be steered by what they read; the user at a terminal is not quarantined.
        quarantine = origin != "cli" and looks_like_injection(text)
        if r.tombstoned(self.store.conn, "content", [content_hash(text)]):
            # Trigger: the user forgot this text before and now types it again.
            # Outcome: a deliberate remember wins over the old tombstone.
            with self.store.transaction():
                self.store.conn.execute(
                    "delete from tombstones where kind = 'content' and value = ?",
                    (content_hash(text),))
        res = FileResult(uri, "ingested")
        ids = self.ingestor.store_episodes(
            uri, kind, [draft], remove_stale=False, result=res, facts_override=[[fact]],
            origin="typed", project=project, tags=tuple(tags), pinned=pin,
            quarantine_injections=quarantine)
        if not ids:
            # The very same text was remembered before: nothing new to store.
            got = self.store.conn.execute(
                "select sp.fact_id from episodes e join sources s on s.id = e.source_id"
                " join supports sp on sp.episode_id = e.id where s.uri = ? and e.locator = ?",
                (uri, draft.locator)).fetchone()
            if got is None:
                raise CairnError("could not store the memory (see the log)")
            fid = int(got[0])
            res.facts_merged = 1
        else:
            fid = ids[0]
        row = self.store.conn.execute(
            "select status, kind, subject, attribute from facts where id = ?", (fid,)).fetchone()
        action = ("added" if res.facts_added and not res.facts_superseded
                  else "superseded" if res.facts_superseded else "merged")
        return {"id": f"f{fid}", "text": text, "action": action, "status": row[0], "kind": row[1],
                "subject": row[2], "attribute": row[3], "project": project, "tags": list(tags),
                "pinned": pin, "superseded": res.facts_superseded}

    def _typed_fact(self, draft: EpisodeDraft) -> FactDraft:
        """The user's own words are the fact; the extractor only labels kind/subject/attribute."""
        try:
            from cairn.extraction.rules import RulesExtractor

            found = RulesExtractor().extract([draft])[0]
        except Exception:  # labelling is best effort; the text is what matters
            log.exception("labelling a typed fact failed")
            found = []
        if len(found) == 1:
            f = found[0]
            return FactDraft(text=draft.text, kind=f.kind, subject=f.subject,
                             attribute=f.attribute, value=f.value, valid_from=f.valid_from,
                             confidence=1.0)
        kind = found[0].kind if found else "knowledge"
        return FactDraft(text=draft.text, kind=kind, subject="user", confidence=1.0)

    # ------------------------------------------------------------ recall

    def recall(self, query: str, *, limit: int = 10, as_of: str | datetime | None = None,
               project: str | None = None, include_quarantined: bool = False,
               explain: bool = False, reinforce: bool = True,
               now: datetime | None = None) -> RecallResult:
        """Hybrid recall over facts and episodes, best first, with provenance."""
        query = query.strip()
        if not query:
            raise BadInput("empty query")
        if limit < 1:
            raise BadInput("--limit must be at least 1")
        now = now or utcnow()
        as_of_dt = parse_as_of(as_of) if isinstance(as_of, str) else as_of
        conn = self.store.conn
        if vectors.model_row(conn) is None:
            return RecallResult(query, [], explain)
        k = max(CANDIDATES, limit * 3)
        first = max(FIRST_PASS, k + k // 2)
        side = self._side_readers()
        later = []
        if side is not None:
            # A process that recalls again and again (MCP server, daemon) runs the two FTS5
            # passes on connections of their own while this thread embeds the query and searches
            # the vectors: SQLite, onnxruntime and numpy release the GIL, so all use both cores.
            later = [pool.submit(s.fts_with_rows, reader, table, query, k)
                     for (pool, reader), table in zip(side, ("facts", "episodes"), strict=True)]
        qv = self._query_vector(query)
        fact_vec = vectors.knn(conn, "facts", qv, k, first_pass=first)
        episode_vec = vectors.knn(conn, "episodes", qv, k, first_pass=first)
        # Rows of the keyword hits come back with them (the side threads load them while this
        # one embeds); only the vector hits' rows are left to load here.
        fact_rows: dict[int, dict[str, Any]] = {}
        ep_rows: dict[int, dict[str, Any]] = {}
        if later:
            (fact_fts, got_facts), (episode_fts, got_eps) = (f.result() for f in later)
            fact_rows.update(got_facts)
            ep_rows.update(got_eps)
        else:
            fact_fts = s.fts(conn, "facts", query, k)
            episode_fts = s.fts(conn, "episodes", query, k)
        lists = {"fact_fts": fact_fts, "fact_vec": fact_vec,
                 "episode_fts": episode_fts, "episode_vec": episode_vec}
        parts: dict[tuple[str, int], dict[str, float]] = defaultdict(lambda: {"rrf": 0.0})
        for name, lst in lists.items():
            kind, search = name.split("_")
            rank_key, raw_key = f"{search}_rank", "bm25" if search == "fts" else "vector_sim"
            floor = MIN_VECTOR_SIM if search == "vec" else float("-inf")
            for rank, (rid, raw) in enumerate(lst, start=1):
                if raw < floor:
                    continue
                p = parts[(kind, rid)]
                p["rrf"] += 1.0 / (RRF_K + rank)
                p[rank_key] = rank
                p[raw_key] = raw
        fact_rows.update(s.load_facts(
            conn, [i for kd, i in parts if kd == "fact" and i not in fact_rows]))
        ep_rows.update(s.load_episodes(
            conn, [i for kd, i in parts if kd == "episode" and i not in ep_rows]))
        # In a conversation the answer to a question is the next message: a question that
        # matches passes part of its score to the reply.
        asked = sorted(((p["rrf"], rid) for (kd, rid), p in parts.items()
                        if kd == "episode" and rid in ep_rows and _is_question(ep_rows[rid]["text"])
                        and ep_rows[rid]["source_kind"] in ("chat", "agent_session")),
                       reverse=True)[:REPLY_FROM_TOP]
        replies = s.next_episodes(conn, [rid for _, rid in asked])
        for score, rid in asked:
            nxt = replies.get(rid)
            if nxt is None:
                continue
            p = parts[("episode", nxt)]
            p["reply_to_question"] = REPLY_SHARE * score
            p["rrf"] += REPLY_SHARE * score
        missing_eps = [rid for kd, rid in parts if kd == "episode" and rid not in ep_rows]
        ep_rows.update(s.load_episodes(conn, missing_eps))
        speakers = s.named_speakers(conn, query)
        win = window(query, as_of_dt or now)
        # With a project, an episode that only supports other projects' facts (an agent's
        # remembered text in another repository) is out of scope like those facts.
        foreign = _foreign_episodes(conn, [rid for kd, rid in parts if kd == "episode"],
                                    project) if project is not None else set()
        scored: list[tuple[float, str, int]] = []
        for (kind, rid), p in parts.items():
            row = fact_rows.get(rid) if kind == "fact" else ep_rows.get(rid)
            if row is None or (kind == "episode" and rid in foreign):
                continue
            factor = self._adjust(kind, row, p, as_of_dt, project, include_quarantined, win, now)
            if factor is None:
                continue
            if speakers and (row.get("speaker") if kind == "episode" else row.get("subject")) \
                    in speakers:
                p["speaker_factor"] = SPEAKER_BOOST
                factor *= SPEAKER_BOOST
            if kind == "episode" and _is_question(row["text"]) and _only_questions(row["text"]):
                p["question_factor"] = QUESTION_FACTOR
                factor *= QUESTION_FACTOR
            p["final"] = p["rrf"] * factor
            scored.append((p["final"], kind, rid))
        scored.sort(key=lambda t: (-t[0], t[1], t[2]))
        top = scored[: 4 * limit + 20]
        fact_ids = [rid for _, kd, rid in top if kd == "fact"]
        # A fact drawn from one episode alone (a typed memory, a sentence of a message) and that
        # episode are one memory, not two: the fact is shown, with the episode as its source,
        # scored by the better of the two plus a share of the other.
        group_of: dict[tuple[str, int], int] = {
            ("fact", fid): eps[0]
            for fid, eps in s.fact_episodes(conn, fact_ids).items() if len(eps) == 1}
        members: dict[tuple[str, int], list[tuple[float, str, int]]] = defaultdict(list)
        for score, kind, rid in top:
            g = ("ep", group_of.get((kind, rid), rid)) if kind == "episode" or (kind, rid) \
                in group_of else (kind, rid)
            members[g].append((score, kind, rid))
        best: dict[tuple[str, int], float] = {}
        for group in members.values():
            group.sort(key=lambda t: (-t[0], t[1] != "fact", t[2]))
            score = group[0][0] + (GROUP_SHARE * group[1][0] if len(group) > 1 else 0.0)
            lead = next((m for m in group if m[1] == "fact"), group[0])
            best[(lead[1], lead[2])] = score
        ranked = sorted(((sc, kd, rid) for (kd, rid), sc in best.items()),
                        key=lambda t: (-t[0], t[1], t[2]))[:limit]
        provenance = s.fact_sources(conn, [rid for _, kd, rid in ranked if kd == "fact"])
        hits: list[Hit] = []
        for score, kind, rid in ranked:
            if kind == "episode":
                e = ep_rows[rid]
                hits.append(Hit(
                    id=f"e{rid}", kind="episode", text=e["text"], score=score, trust=e["trust"],
                    status="quarantined" if e["quarantined"] else "active",
                    valid_from=e["occurred_at"], valid_to=None, recorded_at=e["created_at"],
                    sources=[SourceRef(e["source_kind"], e["uri"], e["locator"], e["speaker"],
                                       e["role"], e["occurred_at"])],
                    explain=parts[(kind, rid)] if explain else None))
            else:
                f = fact_rows[rid]
                prov = provenance.get(rid, [])
                hits.append(Hit(
                    id=f"f{rid}", kind="fact", text=f["text"], score=score, trust=f["trust"],
                    status=f["status"], valid_from=f["valid_from"], valid_to=f["valid_to"],
                    recorded_at=f["recorded_at"],
                    sources=[SourceRef(x["kind"], x["uri"], x["locator"], x["speaker"], x["role"],
                                       x["occurred_at"]) for x in prov],
                    explain=parts[(kind, rid)] if explain else None, project=f["project"]))
        if reinforce:
            self._reinforce([int(h.id[1:]) for h in hits if h.kind == "fact"], now)
        return RecallResult(query, hits, explain)

    def _query_vector(self, query: str) -> Any:
        """The query's embedding, from a small per-process cache: an agent paging through a
        recall (offset=10, 20, ...) or asking again pays the ~2.5 ms embedding once."""
        vec = self._query_vectors.get(query)
        if vec is None:
            vec = self.embedder.embed([query])[0]
            vec.setflags(write=False)  # shared by later recalls: nothing may change it
            self._query_vectors[query] = vec
            if len(self._query_vectors) > QUERY_VECTORS_KEPT:
                self._query_vectors.popitem(last=False)
        else:
            self._query_vectors.move_to_end(query)
        return vec

    @staticmethod
    def _adjust(kind: str, row: dict[str, Any], p: dict[str, float], as_of: datetime | None,
                project: str | None, include_quarantined: bool,
                win: tuple[datetime, datetime] | None, now: datetime) -> float | None:
        """Multiply the fused rank score by trust, strength and validity; None filters out."""
        at = iso(as_of) if as_of else None
        if kind == "fact":
            status = row["status"]
            if status == "quarantined" and not include_quarantined:
                return None
            if project is not None and row["project"] not in (None, project):
                return None
            vf, vt = row["valid_from"], row["valid_to"]
            if at is not None:
                if (vf and vf > at) or (vt and vt <= at) or (row["recorded_at"] > at and not vf):
                    return None
            elif status == "superseded":
                return None
            validity = 1.0
            if at is None and vt and vt < iso(now):
                validity = 0.7  # no longer true
            strength = 0.8 + 0.2 * float(row["strength"]) + (0.1 if row["pinned"] else 0.0)
            when = vf or row["recorded_at"]
            archived = 0.8 if status == "archived" else 1.0
            trust = 0.6 + 0.4 * float(row["trust"])
            factor = trust * strength * validity * archived
        else:
            if row["quarantined"] and not include_quarantined:
                return None
            when = row["occurred_at"] or row["created_at"]
            if at is not None and when and when > at:
                return None
            trust = 0.6 + 0.4 * float(row["trust"])
            factor = trust
        p["trust_factor"] = trust
        if win is not None and when:
            inside = iso(win[0]) <= when < iso(win[1])
            p["time_factor"] = 1.5 if inside else 1.0
            factor *= p["time_factor"]
        return factor

    def reinforce(self, ids: Sequence[str], *, now: datetime | None = None) -> None:
        """Count a recall of the facts among `ids`, for callers that page or trim hits
        themselves (`recall(..., reinforce=False)`) and show only some."""
        self._reinforce([rid for kind, rid in map(parse_id, ids) if kind == "fact"],
                        now or utcnow())

    def _reinforce(self, fact_ids: list[int], now: datetime) -> None:
        if not fact_ids:
            return
        conn = self.store.conn
        try:
            # Reinforcing is a nicety: with the store busy, skip it rather than make recall wait.
            conn.execute("pragma busy_timeout = 250")
            with self.store.transaction():
                conn.executemany(
                    "update facts set recall_count = recall_count + 1, last_recalled_at = ?,"
                    " strength = min(1.0, strength + 0.05) where id = ?",
                    [(iso(now), f) for f in fact_ids])
        except CairnError:
            log.info("store busy: recall reinforcement skipped")
        except Exception as e:
            if "locked" not in str(e) and "busy" not in str(e) and "readonly" not in str(e):
                raise
            log.info("store busy: recall reinforcement skipped")
        finally:
            from cairn.store.db import BUSY_TIMEOUT_MS

            conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")

    # ------------------------------------------------------------ browse

    def get(self, memory_id: str) -> Hit:
        """One memory by id, with every source it came from."""
        kind, rid = parse_id(memory_id)
        conn = self.store.conn
        if kind == "fact":
            rows = s.load_facts(conn, [rid])
            if rid not in rows:
                raise NotFound(f"no memory with id {memory_id}")
            f = rows[rid]
            prov = s.fact_sources(conn, [rid]).get(rid, [])
            return Hit(id=f"f{rid}", kind="fact", text=f["text"], score=0.0, trust=f["trust"],
                       status=f["status"], valid_from=f["valid_from"], valid_to=f["valid_to"],
                       recorded_at=f["recorded_at"], project=f["project"],
                       sources=[SourceRef(x["kind"], x["uri"], x["locator"], x["speaker"],
                                          x["role"], x["occurred_at"]) for x in prov])
        eps = s.load_episodes(conn, [rid])
        if rid not in eps:
            raise NotFound(f"no memory with id {memory_id}")
        e = eps[rid]
        return Hit(id=f"e{rid}", kind="episode", text=e["text"], score=0.0, trust=e["trust"],
                   status="quarantined" if e["quarantined"] else "active",
                   valid_from=e["occurred_at"], valid_to=None, recorded_at=e["created_at"],
                   sources=[SourceRef(e["source_kind"], e["uri"], e["locator"], e["speaker"],
                                      e["role"], e["occurred_at"])])

    def recent(self, *, limit: int = 10, offset: int = 0, project: str | None = None,
               include_quarantined: bool = False) -> list[Hit]:
        """The newest facts first (what was learned lately), paginated."""
        conn = self.store.conn
        where = ["status != 'superseded'"]
        args: list[Any] = []
        if not include_quarantined:
            where.append("status != 'quarantined'")
        if project is not None:
            where.append("(project is null or project = ?)")
            args.append(project)
        ids = [x[0] for x in conn.execute(
            f"select id from facts where {' and '.join(where)}"
            " order by recorded_at desc, id desc limit ? offset ?", (*args, limit, offset))]
        return [self.get(f"f{i}") for i in ids]

    # ------------------------------------------------------------ ingest

    def ingest(self, paths: Sequence[Path], progress: Progress | None = None) -> IngestReport:
        return self.ingestor.ingest_paths(paths, progress)

    def reextract(self, extractor: str | None = None, *, force: bool = False,
                  dry_run: bool = False, progress: Progress | None = None) -> dict[str, Any]:
        """Run extraction again over stored episodes that another extractor (or an older
        version) made; typed and imported facts are kept. `extractor`: rules or llama."""
        from cairn.extraction.registry import load_extractor
        from cairn.ingest.reextract import reextract

        ex = load_extractor(self.settings, extractor) if extractor else self.extractor
        return reextract(self.store, None if dry_run else self.embedder, ex, force=force,
                         dry_run=dry_run, progress=progress).to_dict()

    # ------------------------------------------------------------ forget

    def forget_plan(self, ids: Sequence[str] = (), query: str | None = None,
                    source: Path | None = None, limit: int = 10) -> ForgetPlan:
        """What a forget would delete, without deleting it."""
        conn = self.store.conn
        fact_ids: set[int] = set()
        ep_ids: set[int] = set()
        src_ids: set[int] = set()
        for raw in ids:
            kind, rid = parse_id(raw)
            table = "facts" if kind == "fact" else "episodes"
            if not conn.execute(f"select 1 from {table} where id = ?", (rid,)).fetchone():
                raise NotFound(f"no memory with id {raw}")
            (fact_ids if kind == "fact" else ep_ids).add(rid)
        if query:
            for h in self.recall(query, limit=limit, reinforce=False).hits:
                _, rid = parse_id(h.id)
                (fact_ids if h.kind == "fact" else ep_ids).add(rid)
        if source is not None:
            uri = str(Path(source).expanduser().resolve())
            row = conn.execute("select id from sources where uri = ? or uri = ?",
                               (uri, str(source))).fetchone()
            if row is None:
                raise NotFound(f"no source {source} in the store")
            src_ids.add(int(row[0]))
            ep_ids |= {x[0] for x in conn.execute(
                "select id from episodes where source_id = ?", (row[0],))}
        # A fact's text lives on in the episodes it came from: they go too.
        for chunk in r.chunks(sorted(fact_ids), 500):
            ep_ids |= {x[0] for x in conn.execute(
                f"select episode_id from supports where fact_id in ({','.join('?' * len(chunk))})",
                chunk)}
        # Facts that only these episodes support go with them.
        for chunk in r.chunks(sorted(ep_ids), 500):
            marks = ",".join("?" * len(chunk))
            fact_ids |= {x[0] for x in conn.execute(
                f"select fact_id from supports where episode_id in ({marks}) and fact_id not in"
                f" (select fact_id from supports where episode_id not in ({marks}))",
                chunk + chunk)}
        plan = ForgetPlan()
        for fid, row in sorted(s.load_facts(conn, sorted(fact_ids)).items()):
            plan.facts.append({"id": f"f{fid}", "text": row["text"], "status": row["status"]})
        for eid, row in sorted(s.load_episodes(conn, sorted(ep_ids)).items()):
            plan.episodes.append({"id": f"e{eid}", "text": row["text"], "uri": row["uri"],
                                  "locator": row["locator"]})
        for sid in sorted(src_ids):
            row = conn.execute("select uri, kind from sources where id = ?", (sid,)).fetchone()
            plan.sources.append({"id": sid, "uri": row[0], "kind": row[1]})
        return plan

    def forget_apply(self, plan: ForgetPlan) -> dict[str, int]:
        """Hard-delete everything in the plan, tombstone it, and flush it out of the WAL."""
        conn = self.store.conn
        now = iso(utcnow())
        fids = [int(f["id"][1:]) for f in plan.facts]
        eids = [int(e["id"][1:]) for e in plan.episodes]
        with self.store.transaction():
            hashes = []
            for chunk in r.chunks(eids, 500):
                hashes += [x[0] for x in conn.execute(
                    f"select content_hash from episodes where id in ({','.join('?' * len(chunk))})",
                    chunk)]
            r.tombstone(conn, "content", hashes, now)
            r.tombstone(conn, "uri", [x["uri"] for x in plan.sources], now)
            retracted = r.delete_episodes(conn, eids)
            r.delete_facts(conn, [f for f in fids if f not in set(retracted)])
            for src in plan.sources:
                conn.execute("delete from sources where id = ?", (src["id"],))
        self.store.checkpoint()
        return {"facts": len(fids), "episodes": len(eids), "sources": len(plan.sources)}

    # ------------------------------------------------------------ stats, export, import

    def stats(self) -> dict[str, Any]:
        conn = self.store.conn

        def one(sql: str) -> int:
            return int(conn.execute(sql).fetchone()[0])

        by_status = {row[0]: row[1] for row in conn.execute(
            "select status, count(*) from facts group by status")}
        by_kind = {row[0]: row[1] for row in conn.execute(
            "select kind, count(*) from sources group by kind")}
        counters = self.store.counters()
        model = vectors.model_row(conn)
        path = self.settings.db_path
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
        return {
            "facts": one("select count(*) from facts"),
            "episodes": one("select count(*) from episodes"),
            "sources": one("select count(*) from sources"),
            "supports": one("select count(*) from supports"),
            "tombstones": one("select count(*) from tombstones"),
            "facts_by_status": by_status,
            "sources_by_kind": by_kind,
            "quarantined_episodes": one("select count(*) from episodes where quarantined = 1"),
            "extraction_errors": counters.get("extraction_errors", 0),
            "episodes_by_extractor": {row[0] or "(none)": row[1] for row in conn.execute(
                "select extracted_by, count(*) from episodes group by extracted_by")},
            "embedding_model": {"model_id": model[0], "dimensions": model[1]} if model else None,
            "db_path": str(path),
            "db_bytes": size,
        }

    def audit(self, limit: int = 50) -> dict[str, Any]:
        """What is held back or was removed: quarantined facts and episodes (with why), forgotten
        content (tombstones), superseded history, and the last scheduled job runs."""
        conn = self.store.conn
        rows = conn.execute(
            "select id, text, trust, recorded_at from facts where status = 'quarantined'"
            " order by id desc limit ?", (limit,)).fetchall()
        ids = [row[0] for row in rows]
        prov = s.fact_sources(conn, ids)
        flagged: set[int] = set()
        for chunk in r.chunks(ids, 500):
            flagged |= {x[0] for x in conn.execute(
                "select distinct sp.fact_id from supports sp join episodes e"
                f" on e.id = sp.episode_id where sp.fact_id in ({','.join('?' * len(chunk))})"
                " and e.quarantined = 1", chunk)}
        facts = [{"id": f"f{fid}", "text": text, "trust": trust, "recorded_at": rec,
                  "reason": ("instruction-shaped text" if fid in flagged
                             else "supported only by third-party content"),
                  "sources": [{k: x[k] for k in ("kind", "uri", "locator", "speaker", "role")}
                              for x in prov[fid]]}
                 for fid, text, trust, rec in rows]
        episodes = [{"id": f"e{r_[0]}", "text": r_[1], "uri": r_[2], "locator": r_[3],
                     "speaker": r_[4], "reason": "instruction-shaped text"}
                    for r_ in conn.execute(
                        "select e.id, e.text, s.uri, e.locator, e.speaker from episodes e"
                        " join sources s on s.id = e.source_id where e.quarantined = 1"
                        " order by e.id desc limit ?", (limit,))]
        tomb = {k: n for k, n in conn.execute(
            "select kind, count(*) from tombstones group by kind")}
        jobs = [{"job": j[0], "started_at": j[1], "finished_at": j[2],
                 "counts": json.loads(j[3]) if j[3] else None, "error": j[4]}
                for j in conn.execute(
                    "select job, started_at, finished_at, counts, error from job_runs"
                    " order by id desc limit 10")]
        by_status = dict(conn.execute(
            "select status, count(*) from facts where status in ('quarantined', 'superseded')"
            " group by status").fetchall())
        return {
            "quarantined_facts": facts,
            "quarantined_episodes": episodes,
            "counts": {
                "quarantined_facts": int(by_status.get("quarantined", 0)),
                "quarantined_episodes": int(conn.execute(
                    "select count(*) from episodes where quarantined = 1").fetchone()[0]),
                "superseded_facts": int(by_status.get("superseded", 0)),
                "tombstones": tomb,
            },
            "job_runs": jobs,
        }

    def export(self, out: IO[str]) -> dict[str, int]:
        """JSON lines: every source, episode, fact and support (no vectors: they are rebuilt)."""
        conn = self.store.conn
        counts = {}
        for table in ("sources", "episodes", "facts", "supports"):
            cur = conn.execute(f"select * from {table} order by rowid")
            cols = [c[0] for c in cur.description]
            n = 0
            for row in cur:
                out.write(json.dumps({"type": table[:-1], **dict(zip(cols, row, strict=True))},
                                     ensure_ascii=False) + "\n")
                n += 1
            counts[table] = n
        return counts

    def import_(self, lines: Iterable[str], name: str = "<stdin>") -> dict[str, int]:
        """Read a `cairn export` file: sources, episodes, facts and supports keep their
        provenance; what is already stored is skipped."""
        sources: dict[int, dict[str, Any]] = {}
        episodes: dict[int, dict[str, Any]] = {}
        facts: dict[int, dict[str, Any]] = {}
        supports: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                kind = rec.pop("type")
            except (json.JSONDecodeError, KeyError, AttributeError, TypeError):
                raise BadInput(f"{name}: line {n} is not a cairn export record") from None
            if kind == "source":
                sources[rec["id"]] = rec
            elif kind == "episode":
                episodes[rec["id"]] = rec
            elif kind == "fact":
                facts[rec["id"]] = rec
            elif kind == "support":
                supports[rec["episode_id"]].append(rec)
            else:
                raise BadInput(f"{name}: line {n} has unknown type {kind!r}")
        by_source: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for e in episodes.values():
            by_source[e["source_id"]].append(e)
        added = 0
        for sid, eps in by_source.items():
            src = sources.get(sid)
            if src is None:
                continue
            drafts, overrides = [], []
            for e in eps:
                drafts.append(EpisodeDraft(text=e["text"], locator=e["locator"],
                                           speaker=e["speaker"], role=e["role"],
                                           occurred_at=e["occurred_at"], context=e["context"]))
                overrides.append([FactDraft(
                    text=f["text"], kind=f["kind"], subject=f["subject"], attribute=f["attribute"],
                    value=f["value"], valid_from=f["valid_from"], valid_to=f["valid_to"],
                    confidence=sp["confidence"])
                    for sp in supports.get(e["id"], []) if (f := facts.get(sp["fact_id"]))])
            res = FileResult(src["uri"], "ingested")
            self.ingestor.store_episodes(src["uri"], src["kind"], drafts, remove_stale=False,
                                         result=res, facts_override=overrides)
            added += res.episodes_added
        return {"episodes_added": added, "facts_in_file": len(facts),
                "episodes_in_file": len(episodes)}


def _foreign_episodes(conn: Any, ids: Sequence[int], project: str) -> set[int]:
    """Episodes among `ids` whose every supported fact belongs to a project other than this."""
    out: set[int] = set()
    for chunk in r.chunks(sorted(set(ids)), 500):
        out |= {x[0] for x in conn.execute(
            "select sp.episode_id from supports sp join facts f on f.id = sp.fact_id"
            f" where sp.episode_id in ({','.join('?' * len(chunk))}) group by sp.episode_id"
            " having sum(f.project is null or f.project = ?) = 0", (*chunk, project))}
    return out
