"""The `cairn` executable: `cairn mcp` as agents spawn it (no options) starts the stdio server
without loading the CLI framework; everything else goes to the Typer app.

Why: an agent waits for `cairn mcp` to answer `initialize`, and importing Typer and click is
~70 ms of that on a 2-core machine; the bare stdio server takes no options to parse.
"""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"  # to stderr: stdout may be a protocol


def serve_stdio() -> None:
    """`cairn mcp` as agents run it: settings, then the stdio server; a user mistake (a bad
    config file) is one line on stderr and the CLI's exit status, never a traceback."""
    from cairn.config import load_settings
    from cairn.errors import CairnError
    from cairn.mcp_server.server import one_blas_thread, run_stdio

    one_blas_thread()
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT, stream=sys.stderr)
    try:
        settings = load_settings()
    except CairnError as e:
        sys.stderr.write(f"Error: {e}\n")  # cli.render.error's line, without loading Typer
        raise SystemExit(e.exit_code) from None
    if sys.stdin.isatty():
        sys.stderr.write("cairn mcp: serving MCP on stdin/stdout (an agent starts this;"
                         " Ctrl-C to stop, 'cairn mcp -h' for more)\n")
    try:
        run_stdio(settings)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def main() -> None:
    if sys.argv[1:] == ["mcp"]:
        serve_stdio()
        return
    from cairn.cli.app import main as cli

    cli()
