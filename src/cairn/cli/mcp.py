"""cairn mcp [--http] | install | token: the MCP server for coding agents, and its setup.

`cairn mcp` alone serves stdio, which is what an agent runs; the SDK is imported only then,
so `cairn --help` stays fast.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

mcp_app = typer.Typer(
    help="The MCP server for coding agents (stdio by default), and its setup.",
    invoke_without_command=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

CLIENT_HELP = "claude-code, cursor, vscode, codex or claude-desktop."


@mcp_app.callback()
def serve(
    ctx: typer.Context,
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP instead of stdio (bearer token, 127.0.0.1).")] = False,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="HTTP port.")] = 8765,
    host: Annotated[str, typer.Option("--host", help="HTTP address to listen on; anything but loopback exposes your memories to the network.")] = "127.0.0.1",
    allow_origin: Annotated[list[str] | None, typer.Option("--allow-origin", help="Also accept requests from this browser Origin (repeatable), e.g. http://localhost:6274.")] = None,
    allow_host: Annotated[list[str] | None, typer.Option("--allow-host", help="Also accept this Host header, host:port (repeatable), e.g. behind a proxy.")] = None,
) -> None:
    """Serve cairn's memory tools to a coding agent: stdio by default, or --http.

    Tools: remember, recall, forget, recent, explain. Set it up in a client with
    'cairn mcp install --client NAME'.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not http:
        from cairn.cli.entry import serve_stdio

        serve_stdio()
        return
    from cairn.config import load_settings
    from cairn.mcp_server.http import run_http
    from cairn.mcp_server.server import one_blas_thread

    one_blas_thread()
    run_http(load_settings(), host=host, port=port, extra_hosts=allow_host or (),
             extra_origins=allow_origin or ())


@mcp_app.command("install")
def install(
    client: Annotated[str, typer.Option("--client", "-c", help=CLIENT_HELP)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the entry and where it goes; change nothing.")] = False,
    name: Annotated[str, typer.Option("--name", help="The server's name in the client's config.")] = "cairn",
    json_: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Add cairn to a coding agent's MCP config, keeping what is there and a backup."""
    from cairn.cli import render
    from cairn.mcp_server import install as inst

    res = inst.install(client, name=name, dry_run=dry_run)
    if json_:
        render.print_json(res.to_dict())
        return
    spec = inst.SPECS[res.client]
    if res.action == "unchanged":
        sys.stdout.write(f"{res.client}: '{name}' is already set up in {res.path}\n")
        return
    if dry_run:
        verb = "add" if res.action == "added" else "update"
        sys.stdout.write(f"{res.client}: would {verb} '{name}' in {res.path}:\n")
        sys.stdout.write(inst.render_entry(spec, name, res.entry) + "\n")
        return
    sys.stdout.write(f"{res.client}: {res.action} '{name}' in {res.path}\n")
    if res.backup:
        sys.stdout.write(f"  previous file kept as {res.backup}\n")
    for note in res.notes:
        sys.stdout.write(f"  note: {note}\n")
    sys.stdout.write("  restart the client (or reload its MCP servers) to use it\n")


@mcp_app.command("token")
def token(
    path: Annotated[bool, typer.Option("--path", help="Print where the token is kept instead.")] = False,
    rotate: Annotated[bool, typer.Option("--rotate", help="Replace it; clients need the new one.")] = False,
) -> None:
    """Print the bearer token HTTP clients send (created on first use, kept 0600)."""
    from cairn.mcp_server.http import load_token, token_path

    if path:
        sys.stdout.write(f"{token_path()}\n")
        return
    sys.stdout.write(load_token(rotate=rotate) + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(mcp_app, name="mcp")
