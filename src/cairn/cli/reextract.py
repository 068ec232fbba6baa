"""cairn reextract: extract facts again from the stored episodes, with a better extractor."""

from __future__ import annotations

import sys
from typing import Annotated

import typer


def reextract(
    extractor: Annotated[str | None, typer.Option("--extractor", "-e", help="rules or llama (default: [extraction] extractor in config.toml).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Also episodes this extractor version already did.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be redone; change nothing.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Run extraction again over stored episodes that an older or another extractor made.

    Facts are replaced by what the extractor finds now; facts you typed or imported are kept.
    Safe to interrupt and run again.
    """
    from cairn.cli import render
    from cairn.cli.memory import memory

    with memory() as m, render.ProgressBar(enabled=not json_ and not dry_run) as bar:
        out = m.reextract(extractor, force=all_, dry_run=dry_run, progress=bar)
    if json_:
        render.print_json(out)
        return
    if dry_run:
        sys.stdout.write(f"{out['episodes'] - out['episodes_current']} of {out['episodes']}"
                         f" episodes would be extracted again with {out['extractor']}"
                         f" ({out['episodes_current']} already are)\n")
        return
    line = (f"{out['episodes_done']} episodes extracted again with {out['extractor']}"
            f" ({out['episodes_current']} already current, {out['episodes_failed']} failed):"
            f" {out['facts_added']} facts added, {out['facts_merged']} merged,"
            f" {out['facts_superseded']} superseded, {out['facts_retracted']} retracted")
    if out["facts_restored"]:
        line += f", {out['facts_restored']} restored"
    sys.stdout.write(line + "\n")


def register(app: typer.Typer) -> None:
    app.command()(reextract)
