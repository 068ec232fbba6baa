"""`cairn mcp --http`: a real server on 127.0.0.1 and a free port. A request with a foreign
Origin, a wrong Host, or no (or a wrong) token is refused before anything runs."""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import run_cli
from mcp_helpers import CAIRN, free_port, server_env, text_of


class Server:
    def __init__(self, home: Path, port: int, proc: subprocess.Popen[str]) -> None:
        self.home, self.port, self.proc = home, port, proc
        self.url = f"http://127.0.0.1:{port}/mcp"

    @property
    def token(self) -> str:
        return (self.home / "mcp-token").read_text().strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module (each start costs a second or two); tests count deltas."""
    tmp_path = tmp_path_factory.mktemp("http")
    home = tmp_path / "cairn-home"
    port = free_port()
    proc = subprocess.Popen([CAIRN, "mcp", "--http", "--port", str(port)], env=server_env(home),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"server did not start: {proc.communicate()[1]}") from None
            time.sleep(0.05)
    yield Server(home, port, proc)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def facts(home: Path) -> int:
    from cairn.config import Settings
    from cairn.service import Memory

    with Memory(Settings(db_path=home / "cairn.db", config_path=home / "config.toml",
                         log_dir=home / "logs")) as m:
        return int(m.stats()["facts"])


def post(srv: Server, body: dict[str, Any], *, host: str | None = None,
         origin: str | None = None, token: str | None = "good",
         session: str | None = None) -> tuple[int, dict[str, str], list[Any]]:
    """One JSON-RPC POST with full control over the headers; returns status, headers, messages."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    headers = {"Content-Type": "application/json",
               "Accept": "application/json, text/event-stream",
               "Host": host or f"127.0.0.1:{srv.port}", "MCP-Protocol-Version": "2025-06-18"}
    if origin:
        headers["Origin"] = origin
    if token:
        headers["Authorization"] = f"Bearer {srv.token if token == 'good' else token}"
    if session:
        headers["Mcp-Session-Id"] = session
    conn.request("POST", "/mcp", body=json.dumps(body), headers=headers)
    resp = conn.getresponse()
    raw = resp.read().decode()
    got = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    msgs: list[Any] = []
    if "json" in got.get("content-type", "") and raw.strip():
        msgs = [json.loads(raw)]
    else:
        msgs = [json.loads(line[5:]) for line in raw.splitlines() if line.startswith("data:")]
    return resp.status, got, msgs


def open_session(srv: Server) -> str:
    status, headers, msgs = post(srv, {
        "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw-http", "version": "0"}}})
    assert status == 200, msgs
    sid = headers["mcp-session-id"]
    status, _, _ = post(srv, {"jsonrpc": "2.0", "method": "notifications/initialized"},
                        session=sid)
    assert status == 202
    return sid


REMEMBER = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "remember", "arguments": {"text": "Only trusted callers write"}}}


def test_refused_requests_execute_nothing(server: Server) -> None:
    sid = open_session(server)
    port = server.port
    before = facts(server.home)
    refused = [
        ({"origin": "http://evil.example"}, 403),
        ({"origin": "null"}, 403),
        ({"origin": f"http://127.0.0.1.nip.io:{port}"}, 403),
        ({"host": f"evil.example:{port}"}, 421),           # DNS rebinding: a name we are not
        ({"host": f"127.0.0.1:{port + 1}"}, 421),
        ({"token": None}, 401),
        ({"token": "not-the-token"}, 401),
    ]
    for kw, code in refused:
        status, headers, _ = post(server, REMEMBER, session=sid, **kw)
        assert status == code, kw
        if code == 401:
            assert headers["www-authenticate"].startswith("Bearer")
        assert facts(server.home) == before, f"{kw} ran the tool"
    # The very same request, properly made, does run: the refusals above were the guard's.
    status, _, msgs = post(server, REMEMBER, session=sid,
                           origin=f"http://localhost:{port}", host=f"localhost:{port}")
    assert status == 200
    assert msgs[-1]["result"]["structuredContent"]["action"] == "added"
    assert facts(server.home) == before + 1


def test_initialize_needs_the_token_too(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/mcp", headers={"Accept": "text/event-stream"})
    assert conn.getresponse().status == 401
    conn.close()
    status, headers, _ = post(server, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                       "params": {}}, token=None)
    assert status == 401 and "mcp-session-id" not in headers


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_sdk_client_over_http(server: Server, mode: str) -> None:
    import httpx2

    async def main() -> Any:
        auth = {"Authorization": f"Bearer {server.token}"}
        async with httpx2.AsyncClient(headers=auth, timeout=30) as http, \
                Client(streamable_http_client(server.url, http_client=http), mode=mode) as c:
            r = await c.call_tool("remember", {"text": f"HTTP works in {mode} mode",
                                               "project": "web"})
            q = await c.call_tool("recall", {"query": f"HTTP in {mode} mode", "project": "web"})
            return r, q

    r, q = anyio.run(main)
    assert not r.is_error, text_of(r)
    assert r.structured_content["project"] == "web"
    assert f"HTTP works in {mode} mode" in [h["text"] for h in q.structured_content["hits"]]


def test_token_is_private_and_listening_is_loopback_only(server: Server) -> None:
    path = server.home / "mcp-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(server.token) >= 32
    shown = run_cli("mcp", "token", home=server.home, check=True).stdout.strip()
    assert shown == server.token
    where = run_cli("mcp", "token", "--path", home=server.home, check=True).stdout.strip()
    assert where == str(path)
    if sys.platform.startswith("linux"):
        listening = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            if not os.path.exists(table):
                continue
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, port = local.split(":")
                if state == "0A" and int(port, 16) == server.port:  # LISTEN
                    listening.add(addr)
        assert listening == {"0100007F"}  # 127.0.0.1 only


def test_token_rotates(home: Path) -> None:
    first = run_cli("mcp", "token", home=home, check=True).stdout.strip()
    again = run_cli("mcp", "token", home=home, check=True).stdout.strip()
    rotated = run_cli("mcp", "token", "--rotate", home=home, check=True).stdout.strip()
    assert first == again != rotated
    assert stat.S_IMODE((home / "mcp-token").stat().st_mode) == 0o600


def test_busy_port_is_a_one_line_error(home: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_cli("mcp", "--http", "--port", str(port), home=home)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: cannot listen on 127.0.0.1:") and "--port" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_guard_unit() -> None:
    from cairn.mcp_server.http import allowed_hosts, allowed_origins, is_loopback

    hosts = allowed_hosts("127.0.0.1", 9000)
    assert hosts == ["127.0.0.1:9000", "[::1]:9000", "localhost:9000"]
    assert "http://localhost:9000" in allowed_origins(hosts)
    assert allowed_hosts("::1", 9000) == hosts
    assert is_loopback("127.0.0.2") and is_loopback("::1") and not is_loopback("192.168.1.4")
    assert "192.168.1.4:9000" in allowed_hosts("192.168.1.4", 9000)
