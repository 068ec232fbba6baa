"""The `cairn` executable: `cairn mcp` as agents spawn it (no options) starts the stdio server
without loading the CLI framework; everything else goes to the Typer app.

Why: an agent waits for `cairn mcp` to answer `initialize`, and importing Typer and click is
~70 ms of that on a 2-core machine; the bare stdio server takes no options to parse.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["mcp"]:
        from cairn.mcp_server.server import serve_stdio

        serve_stdio()
        return
    from cairn.cli.app import main as cli

    cli()
