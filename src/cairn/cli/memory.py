"""remember, recall, forget: the three verbs (also installed as commands of their own)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cairn.cli import render

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def memory() -> Any:
    from cairn.config import load_settings
    from cairn.service import Memory

    return Memory(load_settings())


def remember(
    text: Annotated[list[str], typer.Argument(help="What to remember (quote it, or '-' to read stdin).")],
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="A tag; repeat for more.")] = None,
    project: Annotated[str | None, typer.Option(help="The project this memory belongs to.")] = None,
    pin: Annotated[bool, typer.Option(help="Keep it from decaying or being archived.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Store one fact you type: `cairn remember "I moved to Lisbon in June"`."""
    body = sys.stdin.read() if text == ["-"] else " ".join(text)
    with memory() as m:
        out = m.remember(body, tags=tag or [], project=project, pin=pin, origin="cli")
    if json_:
        render.print_json(out)
        return
    note = {"added": "remembered", "merged": "already known; support added",
            "superseded": "remembered; replaces an older fact"}[out["action"]]
    render.console().print(f"[cyan]{out['id']}[/cyan] {note}")


def recall(
    query: Annotated[list[str], typer.Argument(help="What to look for, in your own words.")],
    n: Annotated[int, typer.Option("-n", "--limit", min=1, max=1000, help="How many hits.")] = 10,
    as_of: Annotated[str | None, typer.Option("--as-of", help="What was true then: 2026-05-01, 2026-05, 2026, or an ISO time.")] = None,
    project: Annotated[str | None, typer.Option(help="Only this project's memories and global ones.")] = None,
    include_quarantined: Annotated[bool, typer.Option("--include-quarantined", help="Also show quarantined memories (suspected injections, third-party only).")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="Show each hit's score parts.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Ranked memories with where each came from."""
    with memory() as m:
        res = m.recall(" ".join(query), limit=n, as_of=as_of, project=project,
                       include_quarantined=include_quarantined, explain=explain)
    data = res.to_dict()
    if json_:
        render.print_json(data)
    else:
        render.render_hits(data, explain)


def forget(
    ids: Annotated[list[str] | None, typer.Argument(help="Memory ids as recall shows them (f12, e34).")] = None,
    query: Annotated[str | None, typer.Option("--query", "-q", help="Forget what this query recalls (preview first).")] = None,
    source: Annotated[Path | None, typer.Option("--source", help="Forget everything from this file, and never read it again.")] = None,
    n: Annotated[int, typer.Option("-n", "--limit", min=1, help="With --query: how many hits to forget.")] = 10,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Delete memories for good: rows, search index, vectors; then a tombstone so a rescan
    never brings them back."""
    from cairn.errors import BadInput

    if not ids and not query and source is None:
        raise BadInput("say what to forget: ids, --query Q or --source PATH")
    with memory() as m:
        plan = m.forget_plan(ids or [], query=query, source=source, limit=n)
        if plan.empty:
            if json_:
                render.print_json({"deleted": {"facts": 0, "episodes": 0, "sources": 0},
                                   **plan.to_dict()})
            else:
                render.console().print("nothing to forget")
            return
        needs_confirm = (query is not None or source is not None) and not yes
        if needs_confirm:
            # The preview is shown either way, so a script can see what --yes would delete.
            if json_:
                render.print_json({"deleted": None, "would_delete": plan.to_dict()})
            else:
                render.console().print(f"This deletes {len(plan.facts)} facts,"
                                       f" {len(plan.episodes)} episodes"
                                       f" and {len(plan.sources)} sources:")
                render.render_plan(plan.to_dict())
            if not sys.stdin.isatty():
                raise BadInput("nothing deleted: confirm with --yes (no terminal to ask on)")
            if not typer.confirm("Forget these for good?", default=False):
                raise typer.Exit(1)
        counts = m.forget_apply(plan)
    if json_:
        render.print_json({"deleted": counts, **plan.to_dict()})
    else:
        render.console().print(f"forgot {counts['facts']} facts, {counts['episodes']} episodes,"
                               f" {counts['sources']} sources")
