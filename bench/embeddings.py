"""MiniLM query latency and batch throughput: the numpy pass beside onnxruntime, in one run.

Single queries: 200 different short chat-like queries (bench/latency.py's seeded generator),
one `embed([q])` each, after 20 warm-ups; p50/p95 in ms. Batches: 2,000 chat-like sentences
in chunks of 250 (what ingest hands the embedder), reported as sentences/s. The candidates
take turns on every 25 queries and every chunk, in rotating order, so load from other processes
hits them alike; the load average is printed before and after, and process CPU time beside
wall time. Accuracy: the largest difference from the checked-in sentence-transformers vectors,
and from the numpy pass over the whole batch.

    python bench/embeddings.py                  # numpy, onnxruntime float32, and as load_embedder
                                                # sets it up (the int8 graph)
    python bench/embeddings.py --candidates numpy onnx onnx:std-t2 onnx:fused-t1
    python bench/embeddings.py --sweep          # each setting alone in its own process, 3 rounds
    python bench/embeddings.py --sweep --candidates onnx:std-t0 onnx:std-t1 --rounds 5

An onnx:GRAPH-tTHREADS[-nospin] candidate picks the graph (std: standard ops, which
onnxruntime fuses itself; fused: com.microsoft BERT ops), intra-op threads (0 = onnxruntime's
choice) and whether idle pool threads spin. numpy-blas1 is numpy with OPENBLAS_NUM_THREADS=1
(--sweep only: it must be set before numpy is imported).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import sentence  # the same seeded message generator

REF = Path(__file__).resolve().parent.parent / "tests" / "data" / "minilm_reference.json"
SWEEP = ["numpy", "numpy-blas1", "onnx:std-t0", "onnx:std-t0-nospin", "onnx:std-t1",
         "onnx:std-t2", "onnx:std-t2-nospin", "onnx:fused-t0", "onnx:fused-t1",
         "onnx:fused-t2", "onnx:fused-t2-nospin"]
DEFAULT = ["numpy", "onnx-float32", "onnx"]
Embed = Callable[[Sequence[str]], np.ndarray]


def cpu_timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Wall and process CPU seconds (all threads, spin-waiting included)."""
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def make(name: str, models: Path) -> tuple[Embed, dict[str, Any]]:
    """An embed function for a candidate name, and how long it took to load."""
    from cairn.extraction.embeddings import MiniLMEmbedder, find_minilm_dir
    from cairn.extraction.onnx_minilm import OnnxMiniLMEmbedder

    model_dir = find_minilm_dir()
    if name.startswith("numpy"):
        e, dt, _ = cpu_timed(lambda: MiniLMEmbedder(model_dir))
        return e.embed, {"load_s": round(dt, 2)}
    if name == "onnx-float32":  # the exact graph: [embeddings] precision = "float32"
        o, dt, _ = cpu_timed(lambda: OnnxMiniLMEmbedder(model_dir, models, precision="float32"))
        return o.embed, {"load_s": round(dt, 2)}
    if name == "onnx":  # as load_embedder builds it
        built = not any(models.glob("*.int8.onnx"))  # the graph that runs by default
        o, dt, _ = cpu_timed(lambda: OnnxMiniLMEmbedder(model_dir, models))
        _, again, _ = cpu_timed(lambda: OnnxMiniLMEmbedder(model_dir, models))
        return o.embed, {"load_s": round(dt, 2), "graph_built": built,
                         "reload_s": round(again, 2),
                         "file_mb": round(o.int8_path.stat().st_size / 1e6, 1)}
    import onnxruntime as ort

    graph, threads, *rest = name.removeprefix("onnx:").split("-")
    fused = graph == "fused"
    o = OnnxMiniLMEmbedder(model_dir, models / "fused" if fused else models, fused=fused)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = int(threads.removeprefix("t"))
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0" if rest else "1")
    o.session = ort.InferenceSession(str(o.path), opts, providers=["CPUExecutionProvider"])
    return o.embed, {}


def measure(names: list[str], models: Path, n_queries: int, n_texts: int,
            chunk: int) -> dict[str, Any]:
    load_before = os.getloadavg()
    cands: dict[str, Embed] = {}
    info: dict[str, dict[str, Any]] = {}
    for n in names:
        cands[n], info[n] = make(n, models)
    rng = random.Random(7)
    queries = list(dict.fromkeys(sentence(rng) for _ in range(n_queries * 2)))[:n_queries]
    warm = [sentence(rng) for _ in range(20)]
    texts = [sentence(rng) for _ in range(n_texts)]
    for fn in cands.values():
        fn(warm)
        for q in warm:
            fn([q])

    # Blocks of 25 queries, not alternate queries: numpy's BLAS threads spin for ~0.1 s after
    # each call and would slow whatever runs next on a 2-core machine.
    lat: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for i, start in enumerate(range(0, len(queries), 25)):
        for n in names[i % len(names):] + names[:i % len(names)]:
            for q in queries[start:start + 25]:
                lat[n].append(cpu_timed(lambda n=n, q=q: cands[n]([q]))[1:])
    busy: dict[str, list[float]] = {n: [0.0, 0.0] for n in names}
    vecs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for j, start in enumerate(range(0, len(texts), chunk)):
        part = texts[start:start + chunk]
        for n in names[j % len(names):] + names[:j % len(names)]:
            v, dt, cpu = cpu_timed(lambda n=n, p=part: cands[n](p))
            busy[n][0] += dt
            busy[n][1] += cpu
            vecs[n].append(v)

    ref = json.loads(REF.read_text())
    want = np.array(ref["vectors"], dtype=np.float32)
    out: dict[str, Any] = {"load_before": [round(x, 2) for x in load_before],
                           "load_after": [round(x, 2) for x in os.getloadavg()],
                           "cpus": os.cpu_count(), "candidates": {}}
    for n in names:
        ms = sorted(t * 1000 for t, _ in lat[n])
        r = out["candidates"][n] = {
            "query_p50_ms": round(statistics.median(ms), 2),
            "query_p95_ms": round(ms[int(len(ms) * 0.95) - 1], 2),
            "query_cpu_p50_ms": round(statistics.median(c for _, c in lat[n]) * 1000, 2),
            "batch_sentences_per_s": round(len(texts) / busy[n][0], 1),
            "batch_cpu_ms_per_sentence": round(busy[n][1] * 1000 / len(texts), 2),
            "max_abs_diff_vs_reference": float(np.abs(cands[n](ref["texts"]) - want).max()),
            **info[n],
        }
        if "numpy" in vecs:
            mine, exact = np.vstack(vecs[n]), np.vstack(vecs["numpy"])
            r["max_abs_diff_vs_numpy"] = float(np.abs(mine - exact).max())
            r["min_cosine_vs_numpy"] = round(float((mine * exact).sum(axis=1).min()), 4)
    c = out["candidates"]
    if "numpy" in c and "onnx" in c:
        out["ratio_query_p50_numpy_over_onnx"] = round(
            c["numpy"]["query_p50_ms"] / c["onnx"]["query_p50_ms"], 2)
        out["ratio_batch_onnx_over_numpy"] = round(
            c["onnx"]["batch_sentences_per_s"] / c["numpy"]["batch_sentences_per_s"], 2)
    if "onnx-float32" in c and "onnx" in c:
        out["ratio_query_p50_float32_over_int8"] = round(
            c["onnx-float32"]["query_p50_ms"] / c["onnx"]["query_p50_ms"], 2)
        out["ratio_batch_int8_over_float32"] = round(
            c["onnx"]["batch_sentences_per_s"] / c["onnx-float32"]["batch_sentences_per_s"], 2)
    return out


def sweep(args: argparse.Namespace, models: Path) -> dict[str, Any]:
    """Each candidate alone in a child process (no shared caches or thread pools), in rounds."""
    specs = args.candidates if args.candidates != DEFAULT else SWEEP
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in specs}
    loads = []
    for r in range(args.rounds):
        for n in specs[r % len(specs):] + specs[:r % len(specs)]:
            env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"} if n == "numpy-blas1" else None
            cmd = [sys.executable, __file__, "--json", "--workdir", str(models.parent),
                   "--queries", str(args.queries), "--sentences", str(args.sentences),
                   "--candidates", "numpy" if n == "numpy-blas1" else n]
            res = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True,
                                            check=True).stdout)
            runs[n].append(next(iter(res["candidates"].values())))
            loads.append(res["load_before"][0])
    keys = ("query_p50_ms", "query_cpu_p50_ms", "batch_sentences_per_s",
            "batch_cpu_ms_per_sentence", "max_abs_diff_vs_reference")
    return {"rounds": args.rounds, "load_1min": [min(loads), max(loads)],
            "candidates": {n: {k: statistics.median(x[k] for x in rs) for k in keys}
                           for n, rs in runs.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--chunk", type=int, default=250)
    ap.add_argument("--candidates", nargs="+", default=DEFAULT,
                    help=f"with --sweep, default: {' '.join(SWEEP)}")
    ap.add_argument("--sweep", action="store_true", help="every setting, one process each")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", type=Path, help="keep the built graphs here (default: temp)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="cairn-emb-") as tmp:
        models = (args.workdir or Path(tmp)) / "models"
        if args.sweep:
            make("onnx:std-t1", models)  # build both graphs once, before any timing
            make("onnx:fused-t1", models)
            res = sweep(args, models)
        else:
            res = measure(args.candidates, models, args.queries, args.sentences, args.chunk)
    if args.json:
        print(json.dumps(res, indent=2))
        return
    if args.sweep:
        print(f"{res['rounds']} rounds, medians; 1-min load {res['load_1min']} on {os.cpu_count()}"
              " CPUs")
    else:
        print(f"load average {res['load_before']} -> {res['load_after']} on {res['cpus']} CPUs")
    print(f"{'':22} {'query p50':>10} {'cpu p50':>8} {'batch/s':>8} {'cpu/sent':>8}"
          f" {'vs ref':>8} {'vs numpy':>8} {'min cos':>8}")
    for n, r in res["candidates"].items():
        vs_numpy = r.get("max_abs_diff_vs_numpy")
        cos = r.get("min_cosine_vs_numpy")
        print(f"{n:22} {r['query_p50_ms']:>8.2f}ms {r['query_cpu_p50_ms']:>6.2f}ms"
              f" {r['batch_sentences_per_s']:>8.1f} {r['batch_cpu_ms_per_sentence']:>6.2f}ms"
              f" {r['max_abs_diff_vs_reference']:>8.1e}"
              f" {'' if vs_numpy is None else f'{vs_numpy:>8.1e}'}"
              f" {'' if cos is None else f'{cos:>8.4f}'}")
    c = res["candidates"]
    if "onnx" in c and "load_s" in c["onnx"]:
        o = c["onnx"]
        print(f"start-up: numpy {c.get('numpy', {}).get('load_s')} s; onnxruntime {o['load_s']} s"
              f" ({'graph built' if o['graph_built'] else 'cached graph'}), {o['reload_s']} s"
              f" from the cached graph ({o['file_mb']} MB)")
    if "ratio_query_p50_numpy_over_onnx" in res:
        print(f"onnxruntime vs numpy: query p50 {res['ratio_query_p50_numpy_over_onnx']}x faster,"
              f" batches {res['ratio_batch_onnx_over_numpy']}x the throughput")
    if "ratio_query_p50_float32_over_int8" in res:
        print(f"int8 vs float32 graph: query p50 {res['ratio_query_p50_float32_over_int8']}x"
              f" faster, batches {res['ratio_batch_int8_over_float32']}x the throughput")


if __name__ == "__main__":
    main()
