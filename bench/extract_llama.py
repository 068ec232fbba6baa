"""Throughput of the llama extractor (messages per second).

    python bench/extract_llama.py                      # the tiny random-weight test model
    python bench/extract_llama.py --model ~/models/qwen2.5-1.5b-instruct-q4_k_m.gguf -n 16

The tiny model measures cairn's own overhead (prompting, grammar, validation); a real
model measures what a user will see.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from cairn.extraction.llama import LlamaExtractor
from cairn.models import EpisodeDraft

SAMPLES = [
    "I moved to Lisbon in June and I'm still looking for a flat near Alfama.",
    "My sister Ana starts her new job at Siemens next Monday.",
    "We decided to use Postgres instead of MySQL for the billing service.",
    "I really don't like coffee, tea is fine though.",
    "Remind me to renew my passport before the trip to Japan in October.",
    "Yesterday I ran my first half marathon in 1:58.",
    "Bo is allergic to peanuts, keep that in mind for the party.",
    "The deploy script needs AWS_PROFILE=prod set, otherwise it silently uses staging.",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="GGUF model (default: build the tiny test model)")
    p.add_argument("-n", "--messages", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--n-ctx", type=int, default=4096)
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from gguf_tiny import build_tiny_gguf

            model = build_tiny_gguf(Path(tmp) / "tiny.gguf")
        ex = LlamaExtractor(model, n_threads=args.threads, timeout=args.timeout,
                            batch_size=args.batch_size, n_ctx=args.n_ctx,
                            temperature=1.0 if args.model is None else 0.0)
        episodes = [
            EpisodeDraft(text=SAMPLES[i % len(SAMPLES)], locator=f"m{i}", speaker="Alice",
                         occurred_at="2026-05-08T13:56:00Z")
            for i in range(args.messages)
        ]
        started = time.perf_counter()
        ex.extract(episodes[: args.batch_size])  # load the model
        load = time.perf_counter() - started
        started = time.perf_counter()
        out = ex.extract(episodes)
        elapsed = time.perf_counter() - started
        facts = sum(len(fs) for fs in out)
        ex.close()
    print(f"extract_llama model={Path(model).name} messages={len(out)} batch={args.batch_size}"
          f" threads={args.threads} load+first={load:.2f}s {len(out) / elapsed:.1f} msg/s"
          f" facts={facts} failures={ex.failures} errors={dict(ex.errors)}")


if __name__ == "__main__":
    main()
