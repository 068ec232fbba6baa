"""Ingest speed of chat messages with embeddings, beside the embedder alone, in one run.

A seeded cairn chat JSONL file of N messages is ingested into a fresh store through the same
pipeline as `cairn ingest` (parse, privacy filter, rules facts, MiniLM vectors for episodes and
facts, FTS, one transaction per batch). The baseline is the embedder alone over the same
message texts in the same process: the ratio shows what the rest of the pipeline costs.
Then `cairn --help` start-up (bench/cli_startup.py) for the README table.

    python bench/ingest_speed.py               # 3,000 messages
    python bench/ingest_speed.py --messages 10000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import PEOPLE, sentence  # the same seeded message generator


def write_chat(path: Path, n: int) -> list[str]:
    rng = random.Random(n)
    texts = []
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            text = sentence(rng)
            texts.append(text)
            fh.write(json.dumps({
                "conversation": f"c{i // 200}", "id": f"m{i}", "speaker": rng.choice(PEOPLE),
                "role": "user", "time": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
                "text": text}) + "\n")
    return texts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-ingest-") as tmp:
        home = Path(tmp) / "home"
        os.environ["CAIRN_HOME"] = str(home)
        from cairn.config import load_settings
        from cairn.service import Memory

        chat = Path(tmp) / "bench.chat.jsonl"
        texts = write_chat(chat, args.messages)
        with Memory(load_settings()) as m:
            emb = m.embedder
            emb.embed(texts[:64])  # load and warm
            t0 = time.perf_counter()
            for i in range(0, len(texts), 64):
                emb.embed(texts[i:i + 64])
            embed_only = time.perf_counter() - t0
            t0 = time.perf_counter()
            rep = m.ingest([chat]).to_dict()
            ingest = time.perf_counter() - t0
            stats = m.stats()
    startup = subprocess.run([sys.executable, str(Path(__file__).parent / "cli_startup.py"),
                              "--runs", "10"], capture_output=True, text=True, check=True).stdout
    out = {
        "messages": args.messages,
        "episodes": stats["episodes"], "facts": stats["facts"],
        "ingest_seconds": round(ingest, 2),
        "ingest_msgs_per_s": round(args.messages / ingest, 1),
        "embed_only_msgs_per_s": round(args.messages / embed_only, 1),
        "ingest_vs_embed_only": round(embed_only / ingest, 2),
        "report": {k: rep[k] for k in ("files_ingested", "episodes_added", "facts_added")
                   if k in rep},
        "cli_startup": startup.strip().splitlines(),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{args.messages} chat messages -> {out['episodes']} episodes, {out['facts']} facts"
          f" in {out['ingest_seconds']} s: {out['ingest_msgs_per_s']} msgs/s"
          f" (embedder alone over the same texts: {out['embed_only_msgs_per_s']} msgs/s;"
          f" ingest runs at {out['ingest_vs_embed_only']}x of it)")
    print("\n".join(out["cli_startup"]))


if __name__ == "__main__":
    main()
