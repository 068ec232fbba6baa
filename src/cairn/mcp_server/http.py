"""`cairn mcp --http`: streamable HTTP on 127.0.0.1, behind a bearer token and Host/Origin checks.

Every request passes `Guard` before the MCP app sees it: a Host header that is not this
server's (DNS rebinding), an Origin that is not allowed (a web page calling localhost), or a
missing or wrong token is answered with an error status and nothing runs. The token is created
on first use and kept 0600 in the data folder; `cairn mcp token` prints it.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
import socket
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cairn.config import Settings, data_dir, ensure_private_dir
from cairn.errors import CairnError

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
PATH = "/mcp"


def token_path() -> Path:
    return data_dir() / "mcp-token"


def load_token(path: Path | None = None, *, rotate: bool = False) -> str:
    """The bearer token, created (0600) on first use; `rotate` replaces it."""
    path = path or token_path()
    try:
        _create_token(path, rotate)
    except OSError as e:
        raise CairnError(f"cannot create the MCP token at {path} ({e.strerror or e})") from None
    try:
        os.chmod(path, 0o600)
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise CairnError(f"cannot read the MCP token at {path} ({e}); delete it to make a new one"
                         ) from None
    if len(token) < 16:
        raise CairnError(f"the MCP token at {path} is too short; run 'cairn mcp token --rotate'")
    return token


def _create_token(path: Path, rotate: bool) -> None:
    """Write a new token to a private temporary file, then move it into place: replacing the
    old one (`rotate`), or only if there is none, so two servers starting at once agree."""
    if path.exists() and not rotate:
        return
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
    try:
        if rotate:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)  # atomic, and fails if another process got there first
        except FileExistsError:
            pass
    finally:
        if tmp.exists():
            tmp.unlink()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def allowed_hosts(host: str, port: int, extra: Iterable[str] = ()) -> list[str]:
    """Host header values this server answers to: the address it listens on (and localhost's
    names when that is a loopback address), each with the port."""
    names = {host}
    if is_loopback(host) or host in ("0.0.0.0", "::"):
        names |= {"127.0.0.1", "localhost", "::1"}
    names -= {"0.0.0.0", "::"}
    out = {_hostport(n, port).lower() for n in names}
    out |= {e.lower() for e in extra}
    return sorted(out)


def allowed_origins(hosts: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    return sorted({f"http://{h}" for h in hosts} | {e.rstrip("/").lower() for e in extra})


class Guard:
    """ASGI middleware: Host, then Origin, then the bearer token; only then the app."""

    def __init__(self, app: Any, *, token: str, hosts: Iterable[str],
                 origins: Iterable[str]) -> None:
        self.app = app
        self._token = token.encode()
        self.hosts = {h.lower() for h in hosts}
        self.origins = {o.lower() for o in origins}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for k, v in scope.get("headers") or []:
            name = k.decode("latin-1").lower()
            if name in headers:  # a repeated Host/Origin/Authorization is never honest
                headers[name] = "\x00"
            else:
                headers[name] = v.decode("latin-1")
        host = headers.get("host", "").lower()
        if host not in self.hosts:
            log.warning("refused a request with Host %r", host[:100])
            await _deny(send, 421, "Invalid Host header")
            return
        origin = headers.get("origin")
        if origin is not None and origin.rstrip("/").lower() not in self.origins:
            log.warning("refused a request with Origin %r", origin[:100])
            await _deny(send, 403, "Invalid Origin header")
            return
        auth = headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 self._token):
            await _deny(send, 401, "Missing or wrong bearer token (see 'cairn mcp token')",
                        [(b"www-authenticate", b'Bearer realm="cairn"')])
            return
        await self.app(scope, receive, send)


async def _deny(send: Any, status: int, message: str,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = (message + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


def build_app(settings: Settings, *, host: str, port: int, token: str,
              extra_hosts: Iterable[str] = (), extra_origins: Iterable[str] = ()) -> tuple[Any, Any]:
    """The guarded ASGI app and the runtime behind it."""
    from mcp.server.transport_security import TransportSecuritySettings

    from cairn.mcp_server.server import build_server

    hosts = allowed_hosts(host, port, extra_hosts)
    origins = allowed_origins(hosts, extra_origins)
    mcp, rt = build_server(settings, transport="http")
    # The SDK checks Host/Origin too; same lists, so the two can never disagree.
    inner = mcp.streamable_http_app(
        streamable_http_path=PATH, host=host,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins))
    return Guard(inner, token=token, hosts=hosts, origins=origins), rt


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host.strip("[]"), port), family=family, reuse_port=False)
    except OSError as e:
        raise CairnError(f"cannot listen on {_hostport(host, port)}: {e.strerror or e};"
                         " pick another --port") from None
    sock.set_inheritable(True)
    return sock


def run_http(settings: Settings, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
             extra_hosts: Iterable[str] = (), extra_origins: Iterable[str] = ()) -> None:
    """Serve streamable HTTP until interrupted."""
    import anyio
    import uvicorn

    token = load_token()
    sock = _listen(host, port)
    app, rt = build_app(settings, host=host, port=port, token=token,
                        extra_hosts=extra_hosts, extra_origins=extra_origins)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.serve(sockets=[sock]))
            while not server.started:
                if server.should_exit:
                    return
                await anyio.sleep(0.01)
            where = f"http://{_hostport(host, port)}{PATH}"
            sys.stderr.write(f"cairn mcp: serving {where} (bearer token in {token_path()})\n")
            if not is_loopback(host):
                sys.stderr.write("cairn mcp: warning: listening beyond this machine; anyone who"
                                 " can reach it and has the token can read your memories\n")
            sys.stderr.flush()
            tg.start_soon(rt.warm)

    try:
        anyio.run(main)
    finally:
        sock.close()
        rt.close()
