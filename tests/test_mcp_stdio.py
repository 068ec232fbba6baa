"""`cairn mcp` as agents run it: a real subprocess over stdio, several at once on one store,
and the MCP Inspector CLI from npm when `npx` is there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from conftest import cli_json, run_cli
from mcp_helpers import CAIRN, git_repo, roots_callback, server_env, text_of


def params(home: Path, cwd: Path) -> StdioServerParameters:
    return StdioServerParameters(command=CAIRN, args=["mcp"], env=server_env(home), cwd=cwd)


def test_stdio_session_with_roots(home: Path, tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "webshop")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    async def main() -> Any:
        async with stdio_client(params(home, elsewhere)) as (read, write):
            info = types.Implementation(name="cursor", version="1.0")
            async with ClientSession(read, write, client_info=info,
                                     list_roots_callback=roots_callback(repo)) as s:
                init = await s.initialize()
                tools = await s.list_tools()
                r = await s.call_tool("remember", {"text": "Checkout uses Stripe, not PayPal"})
                q = await s.call_tool("recall", {"query": "which payment provider"})
                return init, tools, r, q

    init, tools, r, q = anyio.run(main)
    assert init.server_info.name == "cairn" and "recall" in (init.instructions or "")
    assert {t.name for t in tools.tools} == {"remember", "recall", "forget", "recent", "explain"}
    assert r.structured_content["project"] == "webshop"
    hit = q.structured_content["hits"][0]
    assert hit["text"] == "Checkout uses Stripe, not PayPal"
    assert hit["sources"][0]["uri"] == "mcp:cursor"
    # The CLI sees what the agent stored, in the same store.
    cli = cli_json("recall", "payment provider", "--project", "webshop", home=home)
    assert cli["hits"][0]["text"] == "Checkout uses Stripe, not PayPal"


def test_raw_pipes_protocol_only_on_stdout_and_project_from_cwd(home: Path,
                                                                tmp_path: Path) -> None:
    """As an agent without roots runs it: from a folder inside a git repository."""
    repo = git_repo(tmp_path / "infra")
    (repo / "terraform").mkdir()
    msgs = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "remember", "arguments": {"text": "Prod runs in eu-west-1"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "forget", "arguments": {"ids": ["f999"]}}},
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen([CAIRN, "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=server_env(home), cwd=repo / "terraform",
                            text=True)
    assert proc.stdin is not None and proc.stdout is not None
    replies: list[Any] = []
    ready = 0.0
    for m in msgs:
        proc.stdin.write(json.dumps(m) + "\n")
        proc.stdin.flush()
        if "id" in m:
            replies.append(json.loads(proc.stdout.readline()))
            ready = ready or time.perf_counter() - t0  # start to answered initialize
    proc.stdin.close()
    rest = proc.stdout.read()
    assert proc.wait(timeout=20) == 0
    err = proc.stderr.read() if proc.stderr else ""
    assert rest == ""
    assert [r["id"] for r in replies] == [1, 2, 3]
    assert replies[0]["result"]["serverInfo"]["name"] == "cairn"
    assert ready < 5.0  # generous for slow shared CI; bench/mcp_bench.py measures it (≤ 1 s)
    assert replies[1]["result"]["structuredContent"]["id"] == "f1"
    assert replies[1]["result"]["structuredContent"]["project"] == "infra"
    assert replies[2]["result"]["isError"] is True
    assert "no memory with id f999" in replies[2]["result"]["content"][0]["text"]
    assert "Traceback" not in err


def test_servers_and_cli_share_one_store_without_lock_errors(home: Path, tmp_path: Path) -> None:
    servers, writes, cli_writes = 3, 25, 3
    run_cli("stats", home=home, check=True)  # the store exists before the race starts

    async def agent(n: int, results: list[Any]) -> None:
        async with Client(params(home, tmp_path)) as c:
            for i in range(writes):
                r = await c.call_tool("remember", {"text": f"Agent {n} wrote note {i} about"
                                                           f" topic {n * 1000 + i}"})
                results.append(r)
                if i % 10 == 0:
                    results.append(await c.call_tool("recall", {"query": f"agent {n} note"}))

    def cli(i: int, results: list[Any]) -> None:
        results.append(run_cli("remember", f"The shell wrote line {i}", home=home))

    async def main() -> tuple[list[Any], list[Any]]:
        agents: list[Any] = []
        shells: list[Any] = []
        async with anyio.create_task_group() as tg:
            for n in range(servers):
                tg.start_soon(agent, n, agents)
            for i in range(cli_writes):
                tg.start_soon(anyio.to_thread.run_sync, cli, i, shells)
        return agents, shells

    agents, shells = anyio.run(main)
    errors = [text_of(r) for r in agents if r.is_error]
    assert errors == []
    assert all(p.returncode == 0 for p in shells), [p.stderr for p in shells]
    assert not any("locked" in p.stderr for p in shells)
    ids = [r.structured_content["id"] for r in agents if "action" in r.structured_content]
    assert len(ids) == len(set(ids)) == servers * writes
    assert cli_json("stats", home=home)["facts"] == servers * writes + cli_writes


def test_help_does_not_import_the_sdk() -> None:
    code = ("import sys; import cairn.cli.app; "
            "sys.exit(1 if [m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')] else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_bare_mcp_skips_the_cli_framework_and_reports_a_bad_config_in_one_line(
        home: Path) -> None:
    # what agents run: no Typer/click import on the way to the server
    code = ("import sys; sys.argv = ['cairn', 'mcp']; import cairn.cli.entry as e;"
            " import cairn.mcp_server.server; e.serve_stdio = lambda: None; e.main();"
            " sys.exit(1 if 'typer' in sys.modules or 'click' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("[embeddings\nprecision = 'int8'\n")
    proc = subprocess.run([CAIRN, "mcp"], capture_output=True, text=True, timeout=60,
                          input="", env=server_env(home))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("Error: ") and "config.toml" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_stdio_runs_on_nonblocking_pipes(home: Path) -> None:
    proc = subprocess.Popen([CAIRN, "-v", "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=server_env(home))
    assert proc.stdin is not None and proc.stdout is not None
    big = "word " * 40_000  # a 200 kB line: the reader takes a whole message however long

    def ask(msg: dict[str, Any]) -> dict[str, Any]:
        proc.stdin.write((json.dumps(msg) + "\n").encode())
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    assert ask({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}})["id"] == 1
    proc.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
    assert ask({"jsonrpc": "2.0", "id": 2, "method": "ping",
                "params": {"_meta": {"pad": big}}}) == {"jsonrpc": "2.0", "id": 2, "result": {}}
    got = ask({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "remember", "arguments": {"text": "The kayak lives in the garage " + "x" * 3000}}})
    assert got["id"] == 3 and got["result"]["structuredContent"]["action"] == "added"
    got = ask({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "recall", "arguments": {"query": "where does the kayak live"}}})
    assert got["result"]["structuredContent"]["hits"][0]["text"].startswith("The kayak")
    proc.stdin.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "stdio: serving on non-blocking pipes" in err


def test_stdio_from_a_file_takes_the_sdk_transport(home: Path, tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(json.dumps(m) + "\n" for m in [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "ping"},
        {"jsonrpc": "2.0", "id": 3, "method": "ping"}]))
    with open(requests, "rb") as fh:
        proc = subprocess.run([CAIRN, "-v", "mcp"], stdin=fh, capture_output=True, timeout=60,
                              env=server_env(home))
    # The SDK stops at end of input and may drop answers still in flight (so no count of
    # them here): what comes out is protocol only.
    assert all(json.loads(x)["jsonrpc"] == "2.0" for x in proc.stdout.decode().splitlines())
    assert proc.returncode == 0
    err = proc.stderr.decode()
    assert "serving with the SDK's transport" in err and "non-blocking pipes" not in err


def test_stdio_on_the_null_device_ends_cleanly(home: Path) -> None:
    """/dev/null is a character device epoll refuses: the SDK's transport serves, sees the end
    of input and exits (the pipe transport would have hung with a logged traceback)."""
    with open(os.devnull, "rb") as nul_in, open(os.devnull, "wb") as nul_out:
        proc = subprocess.run([CAIRN, "-v", "mcp"], stdin=nul_in, stdout=nul_out,
                              stderr=subprocess.PIPE, timeout=60, env=server_env(home))
    err = proc.stderr.decode()
    assert proc.returncode == 0 and "Traceback" not in err
    assert "serving with the SDK's transport" in err


INSPECTOR = "@modelcontextprotocol/inspector@0.15"


@pytest.mark.skipif(shutil.which("npx") is None, reason="npx (Node.js) is not installed")
def test_mcp_inspector_cli(home: Path, tmp_path: Path) -> None:
    def inspect(*args: str) -> Any:
        cmd = ["npx", "-y", INSPECTOR, "--cli", "-e", f"CAIRN_HOME={home}", CAIRN, "mcp",
               *args]
        env = {**os.environ, "npm_config_update_notifier": "false"}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path,
                              env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout)

    listed = inspect("--method", "tools/list")
    by_name = {t["name"]: t for t in listed["tools"]}
    assert by_name["recall"]["annotations"]["readOnlyHint"] is True
    assert by_name["forget"]["annotations"]["destructiveHint"] is True
    assert "outputSchema" in by_name["recall"]
    run_cli("remember", "The Inspector can read memories", home=home, check=True)
    found = inspect("--method", "tools/call", "--tool-name", "recall",
                    "--tool-arg", "query=inspector read memories")
    assert found["structuredContent"]["hits"][0]["text"] == "The Inspector can read memories"
    assert "evidence to weigh" in found["content"][0]["text"]
