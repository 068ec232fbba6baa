"""stats, audit, export, import, config, doctor."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cairn.cli import render
from cairn.cli.memory import JsonOpt, memory


def stats(json_: JsonOpt = False) -> None:
    """Counts of what the store holds."""
    with memory() as m:
        data = m.stats()
    if json_:
        render.print_json(data)
        return
    con = render.console()
    for key in ("facts", "episodes", "sources", "supports", "tombstones",
                "quarantined_episodes", "extraction_errors"):
        con.print(f"{key.replace('_', ' '):>22}  {data[key]}")
    if data["facts_by_status"]:
        con.print(f"{'facts by status':>22}  " + ", ".join(
            f"{k} {v}" for k, v in sorted(data["facts_by_status"].items())))
    if data["sources_by_kind"]:
        con.print(f"{'sources by kind':>22}  " + ", ".join(
            f"{k} {v}" for k, v in sorted(data["sources_by_kind"].items())))
    con.print(f"{'store':>22}  {data['db_path']} ({data['db_bytes'] / 1e6:.1f} MB)")


def audit(
    n: Annotated[int, typer.Option("-n", "--limit", min=1, help="How many of each to list.")] = 50,
    json_: JsonOpt = False,
) -> None:
    """What recall holds back and why: quarantined facts and episodes (instruction-shaped or
    third-party only), forgotten content, superseded history, recent job runs."""
    from rich.markup import escape

    with memory() as m:
        data = m.audit(limit=n)
    if json_:
        render.print_json(data)
        return
    con = render.console()
    c = data["counts"]
    tomb = ", ".join(f"{v} {k}" for k, v in sorted(c["tombstones"].items())) or "none"
    con.print(f"{c['quarantined_facts']} quarantined facts, {c['quarantined_episodes']}"
              f" quarantined episodes, {c['superseded_facts']} superseded facts kept as history;"
              f" tombstones: {tomb}")
    for f in data["quarantined_facts"]:
        con.print(f"  [cyan]{f['id']:>7}[/cyan]  {escape(f['text'])}")
        con.print(f"           [dim]{f['reason']}; trust {f['trust']:.2f}[/dim]")
        for src in f["sources"][:3]:
            con.print(f"           [dim]↳ {escape(src['kind'])} {escape(src['uri'])}"
                      f" {escape(str(src['locator'] or ''))}[/dim]")
    for e in data["quarantined_episodes"]:
        con.print(f"  [cyan]{e['id']:>7}[/cyan]  {escape(e['text'][:200])}")
        con.print(f"           [dim]{e['reason']}; {escape(e['uri'])}"
                  f" {escape(str(e['locator'] or ''))}[/dim]")
    for j in data["job_runs"]:
        state = "failed: " + j["error"] if j["error"] else ("done" if j["finished_at"]
                                                             else "running")
        con.print(f"  job {j['job']} {j['started_at']} {escape(state)}")
    if c["quarantined_facts"] or c["quarantined_episodes"]:
        con.print("[dim]recall shows these only with --include-quarantined;"
                  " 'cairn forget ID' removes one for good[/dim]")


def export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Everything stored, as JSON lines (sources, episodes, facts, supports)."""
    with memory() as m:
        if output is None:
            counts = m.export(sys.stdout)
        else:
            import os

            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8") as fh:
                counts = m.export(fh)
            render.warn(f"exported {counts['facts']} facts, {counts['episodes']} episodes"
                        f" to {output}")


def import_(
    path: Annotated[str, typer.Argument(help="A file written by 'cairn export', or '-' for stdin.")],
    json_: JsonOpt = False,
) -> None:
    """Read a `cairn export` file back; what is already stored is skipped."""
    from cairn.errors import BadInput

    with memory() as m:
        if path == "-":
            out = m.import_(sys.stdin, "<stdin>")
        else:
            try:
                with open(path, encoding="utf-8") as fh:
                    out = m.import_(fh, path)
            except FileNotFoundError:
                raise BadInput(f"{path}: no such file") from None
            except UnicodeDecodeError:
                raise BadInput(f"{path}: not UTF-8 text (is it a cairn export?)") from None
    if json_:
        render.print_json(out)
    else:
        render.console().print(f"imported {out['episodes_added']} new episodes"
                               f" ({out['episodes_in_file']} in the file)")


config_app = typer.Typer(help="Show or change config.toml.", no_args_is_help=False)


@config_app.callback(invoke_without_command=True)
def config_show(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Where cairn keeps things and the settings in effect."""
    if ctx.invoked_subcommand is not None:
        return
    from cairn.config import DEFAULTS, load_settings

    s = load_settings()
    effective = {sec: {k: s.get(sec, k) for k in keys} for sec, keys in DEFAULTS.items()}
    data = {"db_path": str(s.db_path), "config_path": str(s.config_path),
            "config_exists": s.config_path.exists(), "log_dir": str(s.log_dir),
            "settings": effective}
    if json_:
        render.print_json(data)
        return
    con = render.console()
    con.print(f"store   {data['db_path']}")
    con.print(f"config  {data['config_path']}" + ("" if data["config_exists"] else " (not created)"))
    con.print(f"logs    {data['log_dir']}")
    for sec, body in effective.items():
        con.print(f"\n\\[{sec}]")
        for k, v in body.items():
            con.print(f"{k} = {_toml_value(v)}")


@config_app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="section.key, e.g. extraction.extractor")],
    value: Annotated[str, typer.Argument(help="The value (TOML syntax for lists and numbers; plain text is a string).")],
) -> None:
    """Set one key in config.toml (the file is created if needed)."""
    from cairn.config import set_config_value

    path, parsed = set_config_value(key, value)
    render.console().print(f"{key} = {_toml_value(parsed)}  ({path})")


@config_app.command("path")
def config_path_cmd() -> None:
    """Print the path of config.toml."""
    from cairn.config import config_path

    sys.stdout.write(f"{config_path()}\n")


def _toml_value(v: Any) -> str:
    import json

    if v is None:
        return "(unset)"
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v, ensure_ascii=False)


def doctor(json_: JsonOpt = False) -> None:
    """Check that everything cairn needs is in place, and say how to fix what is not."""
    from cairn.cli.doctor import run_checks

    checks = run_checks()
    ok = all(c["ok"] or not c["required"] for c in checks)
    if json_:
        render.print_json({"ok": ok, "checks": checks})
    else:
        con = render.console()
        for c in checks:
            mark = "[green]ok[/green]  " if c["ok"] else (
                "[red]FAIL[/red]" if c["required"] else "[yellow]--[/yellow]  ")
            con.print(f"{mark} {c['name']}: {c['detail']}")
    if not ok:
        raise typer.Exit(1)
