"""Output: JSON for scripts, short readable lines for people, colour only on a terminal."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def console(stderr: bool = False) -> Any:
    # rich picks colour only for a TTY and honours NO_COLOR; imported here to keep --help fast.
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    """One line on stderr; red on a terminal."""
    if sys.stderr.isatty():
        typer.secho(f"Error: {message}", fg="red", err=True)
    else:
        sys.stderr.write(f"Error: {message}\n")


def warn(message: str) -> None:
    sys.stderr.write(f"{message}\n")


def _where(src: dict[str, Any]) -> str:
    parts = [src["kind"], src["uri"]]
    if src.get("locator"):
        parts.append(src["locator"])
    if src.get("speaker"):
        parts.append(f"({src['speaker']})")
    if src.get("occurred_at"):
        parts.append(str(src["occurred_at"])[:10])
    return " ".join(parts)


def render_hits(result: dict[str, Any], explain: bool = False) -> None:
    from rich.markup import escape

    con = console()
    hits = result["hits"]
    if not hits:
        con.print(f"[dim]nothing found for[/dim] {escape(result['query'])}")
        return
    for n, h in enumerate(hits, start=1):
        status = "" if h["status"] == "active" else f" · {h['status']}"
        valid = ""
        if h.get("valid_from") and h["kind"] == "fact":
            valid = f" · from {h['valid_from'][:10]}"
            if h.get("valid_to"):
                valid += f" to {h['valid_to'][:10]}"
        text = escape(h["text"]).replace("\n", "\n     ")
        con.print(f"[bold]{n:>2}.[/bold] [cyan]{h['id']}[/cyan] {text}")
        con.print(f"     [dim]{h['kind']} · trust {h['trust']:.2f}{status}{valid}[/dim]")
        for src in h["sources"][:3]:
            con.print(f"     [dim]↳ {escape(_where(src))}[/dim]")
        if len(h["sources"]) > 3:
            con.print(f"     [dim]↳ … and {len(h['sources']) - 3} more sources[/dim]")
        if explain and h.get("explain"):
            parts = ", ".join(f"{k}={v:.4g}" for k, v in h["explain"].items())
            con.print(f"     [yellow]{escape(parts)}[/yellow]")


def render_plan(plan: dict[str, Any]) -> None:
    from rich.markup import escape

    con = console()
    for s in plan["sources"]:
        con.print(f"  source  {escape(s['uri'])}")
    for f in plan["facts"]:
        con.print(f"  [cyan]{f['id']:>7}[/cyan]  {escape(_short(f['text']))}")
    for e in plan["episodes"]:
        con.print(f"  [cyan]{e['id']:>7}[/cyan]  {escape(_short(e['text']))}"
                  f"  [dim]{escape(e['uri'])} {e['locator']}[/dim]")


def _short(text: str, n: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def render_ingest(report: dict[str, Any]) -> None:
    for item in report["errors"]:
        sys.stderr.write(f"{item['path']}: {item['reason']}\n")
    for item in report["skipped"]:
        sys.stderr.write(f"{item['path']}: skipped ({item['reason']})\n")
    skipped_records = report["records_skipped"]
    line = (f"{report['files_ingested']} files ingested, {report['files_unchanged']} unchanged,"
            f" {report['files_skipped']} skipped, {report['files_error']} not readable;"
            f" {report['episodes_added']} episodes added, {report['episodes_removed']} removed;"
            f" {report['facts_added']} facts added, {report['facts_merged']} merged,"
            f" {report['facts_superseded']} superseded, {report['facts_retracted']} retracted")
    if skipped_records:
        line += f"; {skipped_records} malformed records skipped"
    sys.stdout.write(line + "\n")


class ProgressBar:
    """A rich progress bar on a terminal; nothing when output is piped."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeRemainingColumn(),
                                 console=console(stderr=True), transient=True)
            self._bar.__enter__()
        return self

    def __call__(self, what: str, advance: int, total: int | None) -> None:
        if self._bar is None:
            return
        if total is not None:
            if what in self._tasks:
                self._bar.reset(self._tasks[what], total=total)
            else:
                self._tasks[what] = self._bar.add_task(what, total=total)
        elif what in self._tasks:
            self._bar.advance(self._tasks[what], advance)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
