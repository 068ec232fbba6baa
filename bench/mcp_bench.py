"""`cairn mcp` figures: start to ready, warm tool calls at 20,000 memories, concurrent writers.

1. Start to ready: spawn `cairn mcp` and time until its answer to `initialize` arrives
   (raw JSON-RPC over the pipes, so no client library is timed), median of 10 after one warm-up.
2. Warm tool calls: a store of 20,000 memories typed by agents (each a fact with the episode it
   was typed in), built through the service's ingestor in batches, as `remember` stores them.
   One `cairn mcp` over stdio; after 20 warm-up calls, 200 timed calls each of recall (varied
   queries), recent, explain and remember. Client-side round trips, measured twice: with a
   minimal JSON-RPC client on the pipes (one line out, one line back: the server's latency, as
   any agent sees it), and with the Python SDK's client (which adds its own parsing and output
   validation, ~2-5 ms, in the caller's process).
3. Concurrency: 4 `cairn mcp` servers, each doing 500 `remember` calls at once on one fresh
   store while the CLI writes too; then every returned id is read back and the facts counted.

    python bench/mcp_bench.py                     # all three (the store build takes a while)
    python bench/mcp_bench.py --workdir /tmp/cairn-mcp-bench   # keep the 20k store for reruns
    python bench/mcp_bench.py --only start concurrency --json
    python bench/mcp_bench.py --only warm --store /tmp/lat/n11800   # a store of chat messages
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
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
CAIRN = str(BIN / "cairn")

PEOPLE = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Farah", "Gus", "Hana", "Ivan", "Jo"]
TOOLS = ["pytest", "ruff", "mypy", "poetry", "docker", "terraform", "postgres", "redis", "nginx",
         "celery", "django", "fastapi", "react", "vite", "webpack", "kafka", "grafana", "sentry"]
TOPICS = ["billing", "auth", "search", "onboarding", "exports", "invoices", "the CI", "staging",
          "the mobile app", "the data pipeline", "the admin panel", "notifications", "payments"]
VERBS = ["prefers", "decided to use", "stopped using", "wants to try", "asked to avoid",
         "standardised on", "migrated to", "benchmarked"]
WHEN = ["in March", "last sprint", "on 2026-05-02", "after the outage", "for v2", "this quarter"]


def memory_text(rng: random.Random, i: int) -> str:
    """The i-th memory; each is different (a number in every one), so none merge."""
    kind = i % 4
    if kind == 0:
        return (f"The user {rng.choice(VERBS)} {rng.choice(TOOLS)} for {rng.choice(TOPICS)}"
                f" (ticket {i}).")
    if kind == 1:
        return (f"{rng.choice(PEOPLE)} owns {rng.choice(TOPICS)} and reviews change {i} to it"
                f" {rng.choice(WHEN)}.")
    if kind == 2:
        return (f"We decided to move {rng.choice(TOPICS)} to {rng.choice(TOOLS)}"
                f" {rng.choice(WHEN)} (note {i}).")
    return f"Tests for {rng.choice(TOPICS)} need {rng.choice(TOOLS)} running locally (case {i})."


def queries(n: int) -> list[str]:
    """n different queries (no two alike, so nothing is answered from a cache)."""
    rng = random.Random(11)
    out: dict[str, None] = {}
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n:
            raise SystemExit(f"cannot make {n} different queries from the bench's words")
        i = tries
        if i % 3 == 0:
            q = f"what do we use for {rng.choice(TOPICS)} with {rng.choice(TOOLS)}"
        elif i % 3 == 1:
            q = f"who owns {rng.choice(TOPICS)} since {rng.choice(WHEN)}"
        else:
            q = f"{rng.choice(TOOLS)} {rng.choice(TOPICS)} decision {rng.choice(PEOPLE)}"
        out.setdefault(q, None)
    return list(out)


def service_recall(home: Path, qs: list[str]) -> dict[str, Any]:
    """The same recalls straight through the service, in this process: what MCP adds is the
    difference."""
    os.environ["CAIRN_HOME"] = str(home)
    from cairn.config import load_settings
    from cairn.service import Memory

    with Memory(load_settings()) as m:
        for q in qs[:20]:
            m.recall(q, limit=11, reinforce=False)
        ts = []
        for q in qs[20:]:
            t0 = time.perf_counter()
            m.recall(q, limit=11, reinforce=False)
            ts.append((time.perf_counter() - t0) * 1000)
    return {"calls": len(ts), "p50_ms": pct(ts, 0.5), "p95_ms": pct(ts, 0.95)}


def env_for(home: Path) -> dict[str, str]:
    return {"CAIRN_HOME": str(home), "PATH": os.environ.get("PATH", ""), "NO_COLOR": "1"}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p * len(values)))], 2)


# ---------------------------------------------------------------- 1. start to ready

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {"roots": {"listChanged": True}},
    "clientInfo": {"name": "bench", "version": "0"}}}


def start_to_ready(home: Path, runs: int = 10) -> dict[str, Any]:
    times = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        proc = subprocess.Popen([CAIRN, "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env=env_for(home), cwd=home)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write((json.dumps(INIT) + "\n").encode())
        proc.stdin.flush()
        reply = json.loads(proc.stdout.readline())
        took = time.perf_counter() - t0
        assert reply["result"]["serverInfo"]["name"] == "cairn", reply
        proc.stdin.close()
        proc.wait(timeout=30)
        if i:  # the first run only warms the OS file cache
            times.append(took * 1000)
    return {"runs": runs, "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1), "min_ms": round(min(times), 1)}


# ---------------------------------------------------------------- 2. warm tool calls


def build_store(home: Path, n: int) -> float:
    """n typed memories through the ingestor, in batches; returns seconds (0 if already built)."""
    os.environ["CAIRN_HOME"] = str(home)
    from cairn.config import load_settings
    from cairn.ingest.pipeline import FileResult
    from cairn.models import EpisodeDraft, FactDraft
    from cairn.service import Memory

    with Memory(load_settings()) as m:
        have = m.stats()["facts"]
        if have:
            if have < n:
                raise SystemExit(f"{home} holds {have} memories, not {n}: delete it first")
            return 0.0
        rng = random.Random(n)
        texts = [memory_text(rng, i) for i in range(n)]
        t0 = time.perf_counter()
        batch = 1000
        for start in range(0, n, batch):
            part = texts[start:start + batch]
            drafts = [EpisodeDraft(text=t, locator=f"b{start + j}", role="user",
                                   occurred_at=f"2026-{1 + (start + j) % 12:02d}-"
                                               f"{1 + (start + j) % 28:02d}T10:00:00Z")
                      for j, t in enumerate(part)]
            facts = [[FactDraft(text=t, kind="knowledge", subject="user", confidence=1.0)]
                     for t in part]
            uri = f"mcp:bench-{(start // batch) % 4}"
            m.ingestor.store_episodes(uri, "mcp", drafts, remove_stale=False,
                                      result=FileResult(uri, "ingested"), facts_override=facts,
                                      origin="typed", project=None if (start // batch) % 2 else "bench",
                                      quarantine_injections=True)
            print(f"  built {start + len(part)}/{n}", file=sys.stderr, end="\r")
        print(file=sys.stderr)
        took = time.perf_counter() - t0
        got = m.stats()["facts"]
        if got != n:
            raise SystemExit(f"built {got} memories, expected {n}")
        return took


def _tool_args(qs: list[str], ids: list[str], calls: int) -> dict[str, list[dict[str, Any]]]:
    return {
        "recall": [{"query": q, "all_projects": True} for q in qs[20:20 + calls]],
        "recent": [{"limit": 10, "offset": (i * 10) % 500, "all_projects": True}
                   for i in range(calls)],
        "explain": [{"id": ids[i % len(ids)]} for i in range(calls)],
        "remember": [{"text": f"Bench note {time.time_ns()} number {i} about"
                              f" {TOPICS[i % len(TOPICS)]}"} for i in range(calls)],
    }


def memories(home: Path) -> int:
    """Facts + episodes in an existing store."""
    os.environ["CAIRN_HOME"] = str(home)
    from cairn.config import load_settings
    from cairn.service import Memory

    with Memory(load_settings()) as m:
        st = m.stats()
    return int(st["facts"] + st["episodes"])


def warm_calls_raw(home: Path, calls: int) -> dict[str, Any]:
    """Round trips over the pipes with no client library: write one request line, read lines
    until its response."""
    qs = queries(calls + 20)
    proc = subprocess.Popen([CAIRN, "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=env_for(home), cwd=home)
    assert proc.stdin is not None and proc.stdout is not None
    n = 0

    def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
        nonlocal n
        n += 1
        proc.stdin.write((json.dumps({"jsonrpc": "2.0", "id": n, "method": method,
                                      "params": params}) + "\n").encode())
        proc.stdin.flush()
        while True:
            msg = json.loads(proc.stdout.readline())
            if msg.get("id") == n:
                if "error" in msg or msg["result"].get("isError"):
                    raise SystemExit(f"{method} failed: {msg}")
                return msg["result"]

    out: dict[str, Any] = {}
    try:
        call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                            "clientInfo": {"name": "bench", "version": "0"}})
        proc.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
        first = time.perf_counter()
        call("tools/call", {"name": "recall", "arguments": {"query": "warm up"}})
        out["first_call_ms"] = round((time.perf_counter() - first) * 1000, 1)
        ids: list[str] = []
        for q in qs[:20]:
            res = call("tools/call", {"name": "recall",
                                      "arguments": {"query": q, "all_projects": True}})
            ids += [h["id"] for h in res["structuredContent"]["hits"]]
        for name, args in _tool_args(qs, ids, calls).items():
            ts = []
            for a in args:
                t0 = time.perf_counter()
                call("tools/call", {"name": name, "arguments": a})
                ts.append((time.perf_counter() - t0) * 1000)
            out[name] = {"calls": len(ts), "p50_ms": pct(ts, 0.5), "p95_ms": pct(ts, 0.95)}
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    return out


def warm_calls_sdk(home: Path, calls: int) -> dict[str, Any]:
    """The same calls through the Python SDK's client."""
    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    qs = queries(calls + 20)
    params = StdioServerParameters(command=CAIRN, args=["mcp"], env=env_for(home), cwd=home)

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with Client(params, mode="legacy") as c:
            r = await c.call_tool("recall", {"query": "warm up"})
            assert not r.is_error
            ids = []
            for q in qs[:20]:
                r = await c.call_tool("recall", {"query": q, "all_projects": True})
                ids += [h["id"] for h in r.structured_content["hits"]]
            for name, args in _tool_args(qs, ids, calls).items():
                ts = []
                for a in args:
                    t0 = time.perf_counter()
                    res = await c.call_tool(name, a)
                    ts.append((time.perf_counter() - t0) * 1000)
                    assert not res.is_error, res.content
                out[name] = {"calls": len(ts), "p50_ms": pct(ts, 0.5), "p95_ms": pct(ts, 0.95)}
        return out

    return anyio.run(main)


# ---------------------------------------------------------------- 3. concurrency


def concurrency(home: Path, servers: int, writes: int, cli_writes: int) -> dict[str, Any]:
    import threading

    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    subprocess.run([CAIRN, "stats"], env=env_for(home), check=True, capture_output=True)
    params = StdioServerParameters(command=CAIRN, args=["mcp"], env=env_for(home), cwd=home)
    errors: list[str] = []
    written: dict[str, str] = {}
    cli_failed: list[str] = []

    async def agent(n: int) -> None:
        async with Client(params, mode="legacy") as c:
            for i in range(writes):
                text = f"Agent {n} remembers item {i}: {TOPICS[i % len(TOPICS)]} uses {TOOLS[n]}."
                try:
                    r = await c.call_tool("remember", {"text": text})
                except Exception as e:  # noqa: BLE001 - a failed write is counted, not fatal
                    errors.append(f"{type(e).__name__}: {e}")
                    continue
                if r.is_error:
                    errors.append(r.content[0].text if r.content else "error")
                else:
                    written[r.structured_content["id"]] = text

    def shell() -> None:
        for i in range(cli_writes):
            p = subprocess.run([CAIRN, "remember", f"The shell adds line {i} meanwhile"],
                               env=env_for(home), capture_output=True, text=True)
            if p.returncode != 0 or "locked" in p.stderr:
                cli_failed.append(p.stderr.strip())

    async def main() -> float:
        t0 = time.perf_counter()
        cli = threading.Thread(target=shell)
        cli.start()
        async with anyio.create_task_group() as tg:
            for n in range(servers):
                tg.start_soon(agent, n)
        await anyio.to_thread.run_sync(cli.join)
        return time.perf_counter() - t0

    seconds = anyio.run(main)
    os.environ["CAIRN_HOME"] = str(home)
    from cairn.config import load_settings
    from cairn.service import Memory

    lost = 0
    with Memory(load_settings()) as m:
        for fid, text in written.items():
            try:
                if m.get(fid).text != text:
                    lost += 1
            except Exception:  # noqa: BLE001 - a failed write is counted, not fatal
                lost += 1
        facts = m.stats()["facts"]
    expected = servers * writes + cli_writes
    return {"servers": servers, "writes_each": writes, "cli_writes": cli_writes,
            "errors": len(errors) + len(cli_failed), "locked_errors":
                sum("locked" in e for e in errors + cli_failed),
            "acknowledged": len(written), "lost": lost + (servers * writes - len(written)),
            "facts_in_store": facts, "facts_expected": expected, "seconds": round(seconds, 1),
            "writes_per_s": round(expected / seconds, 1), "first_errors": (errors + cli_failed)[:3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--memories", type=int, default=20_000)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--servers", type=int, default=4)
    ap.add_argument("--writes", type=int, default=500)
    ap.add_argument("--cli-writes", type=int, default=25)
    ap.add_argument("--only", nargs="+", choices=["start", "warm", "concurrency"])
    ap.add_argument("--workdir", help="keep stores here (the 20k store is reused)")
    ap.add_argument("--store", help="time the warm calls on this existing store (a CAIRN_HOME,"
                    " e.g. one bench/latency.py --workdir kept) instead of building one")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # as `cairn mcp` runs, for the in-process baseline
    only = set(args.only or ["start", "warm", "concurrency"])
    out: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="cairn-mcp-bench-") as tmp:
        root = Path(args.workdir or tmp)
        if "start" in only:
            home = root / "start"
            home.mkdir(parents=True, exist_ok=True)
            out["start_to_ready"] = start_to_ready(home)
        if "warm" in only:
            home = Path(args.store) if args.store else root / f"store-{args.memories}"
            secs = 0.0 if args.store else build_store(home, args.memories)
            out["warm"] = {"memories": memories(home) if args.store else args.memories,
                           **warm_calls_raw(home, args.calls)}
            out["warm"]["sdk_client"] = warm_calls_sdk(home, args.calls)
            out["warm"]["service_recall"] = service_recall(home, queries(args.calls + 20))
            if secs:
                out["warm"]["build_s"] = round(secs, 1)
        if "concurrency" in only:
            home = root / f"concurrency-{time.time_ns()}"
            out["concurrency"] = concurrency(home, args.servers, args.writes, args.cli_writes)
    out["load_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(out, indent=2))
        return
    if s := out.get("start_to_ready"):
        print(f"start to ready: median {s['median_ms']} ms, max {s['max_ms']} ms"
              f" ({s['runs']} runs)")
    if w := out.get("warm"):
        print(f"warm tool calls at {w['memories']} memories (first call {w['first_call_ms']} ms):")
        for name in ("recall", "recent", "explain", "remember"):
            sdk = w["sdk_client"][name]
            print(f"  {name:<9} p50 {w[name]['p50_ms']} ms, p95 {w[name]['p95_ms']} ms"
                  f"   (SDK client: p50 {sdk['p50_ms']} ms, p95 {sdk['p95_ms']} ms)")
        sr = w["service_recall"]
        print(f"  (Memory.recall in process, same queries: p50 {sr['p50_ms']} ms,"
              f" p95 {sr['p95_ms']} ms)")
    if c := out.get("concurrency"):
        print(f"{c['servers']} servers x {c['writes_each']} writes (+{c['cli_writes']} CLI):"
              f" {c['errors']} errors ({c['locked_errors']} 'locked'), {c['lost']} lost,"
              f" {c['facts_in_store']}/{c['facts_expected']} facts, {c['seconds']} s"
              f" ({c['writes_per_s']} writes/s)")
    print(f"({out['cpus']} CPUs, load {out['load_before']:.1f} before, {out['load_after']:.1f} after)")


if __name__ == "__main__":
    main()
