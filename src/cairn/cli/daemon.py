"""cairn daemon run | status | path: the watcher in the foreground, and what it is doing."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

daemon_app = typer.Typer(
    help="The watcher that remembers without being asked.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
NOT_RUNNING = 3  # as `systemctl status` and LSB init scripts say "not running"


@daemon_app.command("run")
def run(
    once: Annotated[bool, typer.Option("--once", help="Scan the watched folders once, then exit (no watching).")] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error. Memory text is only logged at debug.")] = "info",
) -> None:
    """Watch the configured folders in the foreground; a service manager supervises it.

    SIGTERM or Ctrl-C stops it cleanly. Logs go to the log folder and stderr.
    """
    from cairn.config import load_settings
    from cairn.daemon.lifecycle import run_daemon

    level = LEVELS.get(log_level.lower())
    if level is None:
        raise typer.BadParameter(f"{log_level!r}; use one of {', '.join(LEVELS)}",
                                 param_hint="--log-level")
    raise typer.Exit(run_daemon(load_settings(), once=once, level=level))


@daemon_app.command("status")
def status(
    json_: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Whether the daemon runs, what it watches and what it did lately (exit 3: not running)."""
    from cairn.config import load_settings
    from cairn.daemon.status import DaemonPaths, read_status

    s = load_settings()
    data = read_status(DaemonPaths.for_store(s.db_path, s.log_dir))
    if json_:
        from cairn.cli.render import print_json

        print_json(data)
    else:
        render_status(data)
    if not data.get("running"):
        raise typer.Exit(NOT_RUNNING)


@daemon_app.command("path")
def path(
    which: Annotated[str, typer.Argument(help="status, log or lock.")] = "status",
) -> None:
    """Print where the daemon's status file, log or lock lives."""
    from cairn.config import load_settings
    from cairn.daemon.status import DaemonPaths

    s = load_settings()
    paths = DaemonPaths.for_store(s.db_path, s.log_dir)
    if which not in ("status", "log", "lock"):
        raise typer.BadParameter(f"{which!r}; use status, log or lock", param_hint="WHICH")
    sys.stdout.write(f"{getattr(paths, which)}\n")


def render_status(d: dict[str, Any]) -> None:
    out: list[str] = []
    state = d.get("state", "stopped")
    if d.get("running"):
        head = f"cairn daemon: {state}"
        if d.get("pid"):
            head += f" (pid {d['pid']}, since {d.get('started_at', '?')})"
    else:
        head = "cairn daemon: not running"
        if d.get("unclean_exit"):
            head += f" (pid {d.get('pid')} stopped without shutting down cleanly)"
        elif d.get("updated_at"):
            head += f" (last stopped {d['updated_at']})"
    out.append(head)
    if d.get("status_error"):
        out.append(f"  {d['status_error']}")
    if d.get("store"):
        out.append(f"  store: {d['store']}")
    if d.get("running"):
        out.append(f"  activity: {d.get('activity', '?')}, queue: {d.get('queue_length', 0)}")
    watching = d.get("watching")
    if watching is not None:
        origin = " (no [sources] configured: the usual places found here)" if d.get("defaults") \
            else ""
        out.append(f"  watching{origin}:" if watching else
                   "  watching: nothing (set [sources] in config.toml)")
        for w in watching:
            note = f"  ({w['why']})" if w.get("why") else ""
            if w.get("error"):
                note += f"  [{w['error']}]"
            out.append(f"    {','.join(w['kinds']):<16} {w['path']}{note}")
    if scan := d.get("last_scan"):
        out.append(f"  last scan: {scan['finished_at']} ({scan['reason']}): {scan['files']} files,"
                   f" {scan['read']} read, {scan['deleted']} deleted, {scan['moved']} moved"
                   f" in {scan['seconds']} s")
    if ev := d.get("last_event"):
        out.append(f"  last event: {ev['at']} {ev['action']} {ev['path']} -> {ev['result']}")
    if c := d.get("counts"):
        out.append("  counts: " + ", ".join(f"{c.get(k, 0)} {k}" for k in
                                            ("ingested", "unchanged", "skipped", "errors",
                                             "deleted", "moved")))
    for job in d.get("jobs") or []:
        line = f"  job {job['name']}: every {job['every_minutes']:g} min, {job['runs']} runs"
        if job.get("next_run_at"):
            line += f", next {job['next_run_at']}"
        if job.get("last_error"):
            line += f", last error: {job['last_error']}"
        out.append(line)
    errors = d.get("recent_errors") or []
    if errors:
        out.append("  recent errors:")
        out += [f"    {e['at']} {e['path']}: {e['reason']}" for e in errors[:10]]
    out.append(f"  log: {d.get('log_file')}")
    sys.stdout.write("\n".join(out) + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(daemon_app, name="daemon")
