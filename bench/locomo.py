"""LoCoMo evidence recall@10: does recall bring back the turns that answer each question?

Each LoCoMo conversation is written as a cairn chat JSONL file (message id = the turn's dia_id,
time = its session's date, an image turn's BLIP caption appended to its text), ingested into its
own store through the same pipeline as `cairn ingest`, and every question of categories 1-4 is
asked through `recall`. Score: the share of gold evidence turns (`D<session>:<turn>`) found among
the first 10 distinct source locators of the ranked hits. The baseline, in the same harness and
on the same turns, is plain BM25 (SQLite FTS5, unicode61 tokens, no stemming) over the turns.

    python bench/locomo.py                 # all 10 conversations
    python bench/locomo.py --conversations 2 --json
    python bench/locomo.py --extractor none   # episodes only, no facts extracted

Data: ../shared/data/locomo/locomo10.json (CC BY-NC 4.0, Maharana et al. 2024); not copied here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "locomo" / "locomo10.json"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
EVIDENCE = re.compile(r"D(\d+):(\d+)")
K = 10


def session_time(raw: str) -> str:
    """'1:56 pm on 8 May, 2023' → '2023-05-08T13:56:00Z'."""
    dt = datetime.strptime(raw.strip(), "%I:%M %p on %d %B, %Y")
    return dt.strftime("%Y-%m-%dT%H:%M:00Z")


def turns(sample: dict[str, Any]) -> list[dict[str, Any]]:
    conv = sample["conversation"]
    out = []
    for key in sorted((k for k in conv if re.fullmatch(r"session_\d+", k)),
                      key=lambda k: int(k.split("_")[1])):
        when = session_time(conv[f"{key}_date_time"])
        for t in conv[key]:
            text = t["text"]
            if t.get("blip_caption"):
                text = f"{text} [shares a photo: {t['blip_caption']}]"
            out.append({"conversation": sample["sample_id"], "session": key, "id": t["dia_id"],
                        "speaker": t["speaker"], "role": "user", "time": when, "text": text})
    return out


def gold(qa: dict[str, Any], known: set[str]) -> set[str]:
    ids = set()
    for ev in qa.get("evidence", []):
        for s, t in EVIDENCE.findall(str(ev)):
            ids.add(f"D{int(s)}:{int(t)}")
    return ids & known


def first_locators(hits: list[dict[str, Any]], k: int = K) -> list[str]:
    seen: list[str] = []
    for h in hits:
        for src in h["sources"]:
            loc = src["locator"]
            if loc and loc not in seen:
                seen.append(loc)
                if len(seen) == k:
                    return seen
    return seen


class BM25Baseline:
    """Plain BM25 over turns: FTS5 (default unicode61 tokenizer) over `speaker: text`, an OR of
    the query's words less the same stop words cairn leaves out."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        import pysqlite3.dbapi2 as sqlite3

        self.db = sqlite3.connect(":memory:")
        self.db.execute("create virtual table t using fts5(id unindexed, text)")
        self.db.executemany("insert into t values (?, ?)",
                            [(r["id"], f"{r['speaker']}: {r['text']}") for r in rows])

    def search(self, query: str, k: int = K) -> list[str]:
        from cairn.store.search import STOPWORDS

        words = [w for w in re.findall(r"\w+", query.lower()) if w not in STOPWORDS]
        if not words:
            return []
        q = " OR ".join(f'"{w}"' for w in words)
        return [r[0] for r in self.db.execute(
            "select id from t where t match ? order by bm25(t) limit ?", (q, k))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = json.loads(Path(args.data).read_text())
    if args.conversations:
        data = data[: args.conversations]
    found: dict[str, dict[int, list[int]]] = {"cairn": defaultdict(lambda: [0, 0]),
                                               "bm25": defaultdict(lambda: [0, 0])}
    per_q: dict[str, dict[int, list[float]]] = {"cairn": defaultdict(list),
                                                "bm25": defaultdict(list)}
    timings = {"turns": 0, "ingest_s": 0.0, "questions": 0, "recall_s": 0.0}
    with tempfile.TemporaryDirectory(prefix="cairn-locomo-") as tmp_dir:
        # --workdir keeps the stores: a rerun finds the chats unchanged and only asks again.
        tmp = args.workdir or tmp_dir
        for sample in data:
            rows = turns(sample)
            known = {r["id"] for r in rows}
            home = Path(tmp) / sample["sample_id"]
            home.mkdir(parents=True, exist_ok=True)
            os.environ["CAIRN_HOME"] = str(home)
            chat = home / f"{sample['sample_id']}.chat.jsonl"
            chat.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

            from cairn.config import load_settings
            from cairn.service import Memory

            settings = load_settings()
            extractor = None
            if args.extractor == "none":
                extractor = _NoFacts()
            mem = Memory(settings, extractor=extractor)
            t0 = time.perf_counter()
            report = mem.ingest([chat]).to_dict()
            timings["ingest_s"] += time.perf_counter() - t0
            timings["turns"] += len(rows)
            if report["files_error"]:
                raise SystemExit(f"ingest failed: {report['errors']}")
            bm25 = BM25Baseline(rows)
            for qa in sample["qa"]:
                cat = qa["category"]
                if cat not in CATEGORIES:
                    continue
                want = gold(qa, known)
                if not want:
                    continue
                t0 = time.perf_counter()
                res = mem.recall(qa["question"], limit=args.limit, reinforce=False)
                timings["recall_s"] += time.perf_counter() - t0
                timings["questions"] += 1
                got = {"cairn": set(first_locators([h.to_dict() for h in res.hits])),
                       "bm25": set(bm25.search(qa["question"]))}
                for system, locs in got.items():
                    hit = len(want & locs)
                    found[system][cat][0] += hit
                    found[system][cat][1] += len(want)
                    per_q[system][cat].append(hit / len(want))
            mem.close()
            if not args.json:
                sys.stderr.write(f"{sample['sample_id']}: {len(rows)} turns\n")
    table: dict[str, Any] = {}
    for system in ("cairn", "bm25"):
        cats = {}
        tot = [0, 0]
        for cat in sorted(CATEGORIES):
            f, n = found[system][cat]
            cats[CATEGORIES[cat]] = round(f / n, 4) if n else None
            tot[0] += f
            tot[1] += n
        all_q = [x for c in per_q[system].values() for x in c]
        qcats = {CATEGORIES[c]: round(sum(v) / len(v), 4) if (v := per_q[system][c]) else None
                 for c in sorted(CATEGORIES)}
        table[system] = {"categories": cats, "question_categories": qcats,
                         "overall": round(tot[0] / tot[1], 4),
                         "question_mean": round(sum(all_q) / len(all_q), 4),
                         "evidence_turns": tot[1]}
    return {
        "k": K,
        "conversations": len(data),
        "extractor": args.extractor,
        "results": table,
        "ingest_turns_per_s": round(timings["turns"] / timings["ingest_s"], 1),
        "recall_ms_mean": round(1000 * timings["recall_s"] / max(timings["questions"], 1), 2),
        "questions": timings["questions"],
    }


class _NoFacts:
    name = "none"
    version = "0"

    def extract(self, episodes: Any) -> list[list[Any]]:
        return [[] for _ in episodes]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--conversations", type=int, default=0, help="only the first N")
    p.add_argument("--limit", type=int, default=15, help="hits asked of recall")
    p.add_argument("--extractor", choices=["rules", "none"], default="rules")
    p.add_argument("--json", action="store_true")
    p.add_argument("--workdir", help="keep the stores here and reuse them on the next run")
    args = p.parse_args()
    if not Path(args.data).exists():
        raise SystemExit(f"{args.data}: LoCoMo data not found (see bench/locomo.py docstring)")
    out = run(args)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    c, b = out["results"]["cairn"], out["results"]["bm25"]
    print(f"LoCoMo evidence recall@{K}, categories 1-4, {out['conversations']} conversations,"
          f" {out['questions']} questions, {c['evidence_turns']} gold evidence turns")
    print(f"{'':<14}{'per question':>26}{'per evidence turn':>26}")
    print(f"{'category':<14}{'cairn':>13}{'BM25':>13}{'cairn':>13}{'BM25':>13}")
    for cat in CATEGORIES.values():
        print(f"{cat:<14}{c['question_categories'][cat]:>13.3f}"
              f"{b['question_categories'][cat]:>13.3f}"
              f"{c['categories'][cat]:>13.3f}{b['categories'][cat]:>13.3f}")
    print(f"{'all':<14}{c['question_mean']:>13.3f}{b['question_mean']:>13.3f}"
          f"{c['overall']:>13.3f}{b['overall']:>13.3f}")
    print(f"ingest {out['ingest_turns_per_s']} turns/s (embeddings + {out['extractor']} facts);"
          f" recall mean {out['recall_ms_mean']} ms over {out['questions']} questions")


if __name__ == "__main__":
    main()
