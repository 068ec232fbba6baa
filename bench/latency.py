"""Warm recall latency at 2,000 and 20,000 memories, in one run, including the query embedding.

Each store is filled with chat messages made from a fixed vocabulary (seeded, so every run
builds the same stores), ingested through the real pipeline (rules facts + MiniLM vectors).
A memory is an episode or a fact: these messages give ~1.7 memories each, so 1,180 and 11,800
messages make the 2k and 20k stores, and 20,000 messages (~34k memories) show the trend.
Then the same 200 queries are asked of each through `Memory.recall` (the path the CLI and MCP
use, reinforcement included) after 20 warm-up queries; p50/p95 are reported with the ratio
of the 20k-memory store to the 2k one.

    python bench/latency.py                  # 1,180 / 11,800 / 20,000 messages
    python bench/latency.py --sizes 1180 11800 --workdir /tmp/cairn-lat   # keep the stores
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

PEOPLE = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Farah", "Gus", "Hana", "Ivan", "Jo"]
PLACES = ["Lisbon", "Osaka", "Berlin", "Nairobi", "Quito", "Oslo", "Hanoi", "Austin", "Lyon", "Perth"]
THINGS = ("cello piano garden sourdough marathon kayak pottery chess podcast novel thesis budget "
          "roadmap migration database dashboard invoice passport visa dentist vet landlord "
          "mortgage bike laptop camera tent recipe concert wedding interview promotion").split()
VERBS = ["started", "finished", "booked", "cancelled", "fixed", "planned", "bought", "sold",
         "visited", "learned", "moved", "reviewed", "shipped", "painted", "joined"]
TIMES = ["yesterday", "last week", "on Monday", "in March", "last year", "two days ago", "today"]
OPENERS = ["I", "We", "My sister", "My manager", "Our team", "My friend"]


def sentence(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:
        return (f"{rng.choice(OPENERS)} {rng.choice(VERBS)} the {rng.choice(THINGS)} "
                f"{rng.choice(TIMES)} in {rng.choice(PLACES)}.")
    if kind < 0.5:
        return f"I really like {rng.choice(THINGS)} and {rng.choice(THINGS)} these days."
    if kind < 0.65:
        return f"{rng.choice(PEOPLE)} said the {rng.choice(THINGS)} is due {rng.choice(TIMES)}."
    if kind < 0.8:
        return (f"Can you remind me about the {rng.choice(THINGS)} with {rng.choice(PEOPLE)}? "
                f"It matters for the {rng.choice(THINGS)}.")
    return (f"We talked about the {rng.choice(THINGS)}, the {rng.choice(THINGS)} and how "
            f"{rng.choice(PEOPLE)} {rng.choice(VERBS)} it in {rng.choice(PLACES)}.")


def build(home: Path, n: int) -> float:
    """Ingest n messages into a store at home; returns seconds (0 when already built)."""
    chat = home / "bench.chat.jsonl"
    os.environ["CAIRN_HOME"] = str(home)
    from cairn.config import load_settings
    from cairn.service import Memory

    if not chat.exists():
        home.mkdir(parents=True, exist_ok=True)
        rng = random.Random(n)
        with open(chat, "w", encoding="utf-8") as fh:
            for i in range(n):
                fh.write(json.dumps({
                    "conversation": f"c{i // 200}", "id": f"m{i}",
                    "speaker": rng.choice(PEOPLE), "role": "user",
                    "time": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
                    "text": sentence(rng)}) + "\n")
    with Memory(load_settings()) as m:
        t0 = time.perf_counter()
        rep = m.ingest([chat]).to_dict()
        took = time.perf_counter() - t0
        return took if rep["files_ingested"] else 0.0


def measure(home: Path, queries: list[str]) -> dict[str, float]:
    os.environ["CAIRN_HOME"] = str(home)
    from cairn.config import load_settings
    from cairn.service import Memory

    with Memory(load_settings()) as m:
        stats = m.stats()
        for q in queries[:20]:
            m.recall(q)
        times = []
        for q in queries:
            t0 = time.perf_counter()
            m.recall(q)
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"memories": stats["facts"] + stats["episodes"], "episodes": stats["episodes"],
            "facts": stats["facts"], "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(0.95 * len(times)) - 1], 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1180, 11800, 20000],
                   help="messages per store (memories = messages + the facts drawn from them)")
    p.add_argument("--workdir")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rng = random.Random(7)
    queries = [f"what about the {rng.choice(THINGS)} in {rng.choice(PLACES)}"
               if i % 3 == 0 else f"when did {rng.choice(PEOPLE)} mention the {rng.choice(THINGS)}"
               if i % 3 == 1 else f"{rng.choice(THINGS)} {rng.choice(TIMES)}"
               for i in range(200)]
    with tempfile.TemporaryDirectory(prefix="cairn-lat-") as tmp:
        root = Path(args.workdir or tmp)
        results = []
        for n in args.sizes:
            home = root / f"n{n}"
            secs = build(home, n)
            r = measure(home, queries)
            r["messages"] = n
            if secs:
                r["ingest_msgs_per_s"] = round(n / secs, 1)
            results.append(r)
    # The figure: the store nearest 20k memories against the one nearest 2k.
    big = min(results, key=lambda r: abs(r["memories"] - 20_000))
    small = min(results, key=lambda r: abs(r["memories"] - 2_000))
    out = {"results": results,
           "p50_ratio": {"of": [big["memories"], small["memories"]],
                         "ratio": round(big["p50_ms"] / small["p50_ms"], 2)}}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for r in results:
        extra = f", ingest {r['ingest_msgs_per_s']} msgs/s" if "ingest_msgs_per_s" in r else ""
        print(f"{r['messages']:>6} messages = {r['memories']:>6} memories: recall p50"
              f" {r['p50_ms']} ms, p95 {r['p95_ms']} ms{extra}")
    big, small = out["p50_ratio"]["of"]
    print(f"p50 ratio {big} memories / {small} memories: {out['p50_ratio']['ratio']}")


if __name__ == "__main__":
    main()
