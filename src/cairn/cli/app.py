"""The `cairn` command. Heavy imports happen inside commands, so `cairn --help` stays fast."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated, Any

import typer

from cairn import __version__
from cairn.cli import admin, ingest, memory
from cairn.cli.entry import LOG_FORMAT

app = typer.Typer(
    name="cairn",
    help="A local-first personal memory: remember, recall, forget. Nothing leaves this machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"cairn {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens to stderr.")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=LOG_FORMAT,
                        stream=sys.stderr)


app.command()(memory.remember)
app.command()(memory.recall)
app.command()(memory.forget)
app.command()(ingest.ingest)
app.command()(admin.stats)
app.command()(admin.audit)
app.command()(admin.export)
app.command("import")(admin.import_)
app.add_typer(admin.config_app, name="config")
app.command()(admin.doctor)


def _register_optional() -> None:
    """Command groups that later modules add (daemon, mcp, service, model, consolidate)."""
    import importlib

    for modname in ("cairn.cli.daemon", "cairn.cli.mcp", "cairn.cli.service", "cairn.cli.model",
                    "cairn.cli.reextract", "cairn.cli.consolidate"):
        try:
            mod = importlib.import_module(modname)
        except ImportError as e:
            if e.name != modname:
                raise
            continue
        mod.register(app)


_register_optional()


def run(entry: Any) -> None:
    """Run a Typer app with cairn's error handling: a user mistake is one line, no traceback."""
    from cairn.errors import CairnError

    try:
        entry()
    except CairnError as e:
        from cairn.cli.render import error

        error(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        # `cairn recall x | head`: the reader left; not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except Exception as e:
        if type(e).__module__.startswith("pysqlite3"):
            from cairn.cli.render import error
            from cairn.config import db_path

            error(f"store {db_path()}: {e}")
            sys.exit(1)
        raise


def main() -> None:
    run(app)


def _single(fn: Any) -> Any:
    one = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                      context_settings={"help_option_names": ["-h", "--help"]})
    one.command()(fn)
    return one


def remember_main() -> None:
    run(_single(memory.remember))


def recall_main() -> None:
    run(_single(memory.recall))


def forget_main() -> None:
    run(_single(memory.forget))
