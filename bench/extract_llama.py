"""The llama extractor: throughput, and what a faulty model costs (it must cost no episode).

    python bench/extract_llama.py                  # the tiny random-weight test model
    python bench/extract_llama.py --json
    python bench/extract_llama.py --model ~/models/qwen2.5-1.5b-instruct-q4_k_m.gguf -n 16

Throughput: messages per second through `LlamaExtractor.extract` (batches of --batch-size,
grammar-constrained, validated), after the model is loaded. The tiny model measures cairn's
own path per call (chat template, prompt, grammar, sampling, validation); at temperature 1 its
random answers vary a lot in length (0.3 to 9 s a batch), so the figure moves between runs. A
real model measures what a user will see.

Fault injection: N chat messages are ingested through the real pipeline (`Memory.ingest`, the
real embedder, a fresh store) with a llama extractor that fails in one way, and the store is
then counted. The faults are real, not mocks:
- garbage: the real tiny model with the grammar turned off (`constrained=False`) answers
  random bytes, so every answer fails validation, is retried once, then falls back;
- timeout: the real model with a 1 ms per-call timeout (the abort callback stops decoding);
- raises: a subclass whose model call raises RuntimeError;
- corrupt model: a file with a GGUF magic and garbage after it, so loading fails;
- no fallback: raises, and no rules extractor behind it: episodes are kept without facts;
- extractor raises: an extractor whose `extract` itself raises (the pipeline's own guard).
"Lost" is messages sent minus episodes stored.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from cairn.extraction.llama import LlamaExtractor  # noqa: E402
from cairn.models import EpisodeDraft  # noqa: E402

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


class Raising(LlamaExtractor):
    def _generate(self, *args: Any, **kwargs: Any) -> str:
        raise RuntimeError("injected: llama_decode returned -1")


class ExtractRaises:
    name = "exploding"
    version = "1"

    def extract(self, episodes: Any) -> Any:
        raise RuntimeError("injected: extractor crashed")


def throughput(model: Path, args: argparse.Namespace, tiny: bool) -> dict[str, Any]:
    temperature = args.temperature if args.temperature is not None else 1.0 if tiny else 0.0
    ex = LlamaExtractor(model, n_threads=args.threads, timeout=args.timeout,
                        batch_size=args.batch_size, n_ctx=args.n_ctx, temperature=temperature)
    eps = [EpisodeDraft(text=SAMPLES[i % len(SAMPLES)], locator=f"m{i}", speaker="Alice",
                        occurred_at="2026-05-08T13:56:00Z") for i in range(args.messages)]
    t0 = time.perf_counter()
    ex.extract(eps[: args.batch_size])  # loads the model
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = ex.extract(eps)
    dt = time.perf_counter() - t0
    ex.close()
    return {"model": model.name, "messages": len(out), "batch_size": args.batch_size,
            "temperature": temperature,
            "threads": args.threads, "load_and_first_batch_s": round(load, 2),
            "seconds": round(dt, 2), "messages_per_s": round(len(out) / dt, 1),
            "facts": sum(len(f) for f in out), "fallbacks": ex.failures,
            "errors": dict(ex.errors)}


def fault_injection(model: Path, tmp: Path, n: int, threads: int) -> list[dict[str, Any]]:
    from cairn.config import load_settings
    from cairn.extraction.rules import RulesExtractor
    from cairn.service import Memory

    corrupt = tmp / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + os.urandom(4096))
    kw: dict[str, Any] = {"n_threads": threads, "batch_size": 4}
    faults = {
        "garbage (grammar off)": lambda: LlamaExtractor(
            model, constrained=False, max_tokens=64, fallback=RulesExtractor(), **kw),
        "timeout (1 ms)": lambda: LlamaExtractor(model, timeout=0.001,
                                                 fallback=RulesExtractor(), **kw),
        "raises": lambda: Raising(model, fallback=RulesExtractor(), **kw),
        "corrupt model": lambda: LlamaExtractor(corrupt, fallback=RulesExtractor(), **kw),
        "raises, no fallback": lambda: Raising(model, fallback=None, **kw),
        "extractor raises": ExtractRaises,
    }
    import logging

    logging.disable(logging.WARNING)  # each injected fault is logged; the table says it all
    rows = []
    for name, make in faults.items():
        home = tmp / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        home.mkdir()
        os.environ["CAIRN_HOME"] = str(home)
        chat = home / "faults.chat.jsonl"
        chat.write_text("".join(json.dumps({
            "id": f"m{i}", "speaker": "Alice", "role": "user",
            "time": "2026-05-08T13:56:00Z", "text": SAMPLES[i % len(SAMPLES)] + f" ({i})"}) + "\n"
            for i in range(n)), encoding="utf-8")
        ex = make()
        t0 = time.perf_counter()
        with Memory(load_settings(), extractor=ex) as m:
            rep = m.ingest([chat]).to_dict()
            stats = m.stats()
        rows.append({"fault": name, "sent": n, "stored": stats["episodes"],
                     "lost": n - stats["episodes"], "extraction_errors": stats["extraction_errors"],
                     "facts": stats["facts"], "facts_by": stats["episodes_by_extractor"],
                     "file_errors": rep["files_error"], "seconds": round(time.perf_counter() - t0, 2)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="GGUF model (default: build the tiny test model)")
    p.add_argument("-n", "--messages", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--n-ctx", type=int, default=4096)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--temperature", type=float,
                   help="default 1.0 for the tiny model (random answers of random length, which"
                        " exercises generation), 0 for a real one; 0 on the tiny model gives the"
                        " per-call overhead floor (it answers {\"facts\": []} at once)")
    p.add_argument("--faults", type=int, default=64, help="messages per fault (0: skip)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="cairn-llama-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        tiny = args.model is None
        model = args.model
        if model is None:
            from gguf_tiny import build_tiny_gguf

            model = build_tiny_gguf(tmp / "tiny.gguf")
        speed = throughput(model, args, tiny)
        faults = fault_injection(model, tmp, args.faults, args.threads) if args.faults else []
    if args.json:
        print(json.dumps({"throughput": speed, "faults": faults}, indent=2))
        return
    print(f"llama extractor, {speed['model']}: {speed['messages_per_s']} messages/s"
          f" ({speed['messages']} messages in {speed['seconds']} s, batch {speed['batch_size']},"
          f" temperature {speed['temperature']},"
          f" {speed['threads']} threads; load + first batch {speed['load_and_first_batch_s']} s;"
          f" {speed['facts']} facts, {speed['fallbacks']} fallbacks)")
    if faults:
        print("\n| fault | sent | stored | lost | extraction errors | facts (made by) |")
        print("|---|---:|---:|---:|---:|---|")
        for f in faults:
            by = ", ".join(f"{k} {v}" for k, v in f["facts_by"].items())
            print(f"| {f['fault']} | {f['sent']} | {f['stored']} | {f['lost']} |"
                  f" {f['extraction_errors']} | {f['facts']} ({by}) |")


if __name__ == "__main__":
    main()
