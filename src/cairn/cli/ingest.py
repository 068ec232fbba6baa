"""cairn ingest: read files or folders through the daemon's pipeline, once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cairn.cli import render
from cairn.cli.memory import JsonOpt, memory


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders: notes (.md, .txt), chats (.chat.jsonl, conversations.json), agent sessions, screenshots.")],
    json_: JsonOpt = False,
) -> None:
    """Ingest files or folders. Re-running is safe: unchanged content is skipped.

    Exits non-zero only when nothing at all could be ingested.
    """
    with memory() as m, render.ProgressBar(enabled=not json_) as bar:
        report = m.ingest(paths, progress=bar)
    data = report.to_dict()
    if json_:
        render.print_json(data)
    else:
        render.render_ingest(data)
    if data["files_ingested"] + data["files_unchanged"] == 0:
        if not data["files"] and not json_:
            render.error("no files cairn can read under " + ", ".join(map(str, paths)))
        raise typer.Exit(1)
