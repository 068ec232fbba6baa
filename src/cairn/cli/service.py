"""cairn service install | uninstall | status | path: keep the daemon running in the background."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from cairn.cli.memory import JsonOpt

service_app = typer.Typer(
    help="Run the daemon as a systemd user service (Linux) or a launchd agent (macOS).",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would be written and run; change nothing.")]


def _service() -> Any:
    from cairn.daemon.servicefiles import Service

    return Service.for_user()


def _hint(svc: Any) -> str:
    if svc.kind == "systemd":
        return ("start it with 'systemctl --user enable --now cairn.service' in a login session;"
                " on a headless machine also run 'loginctl enable-linger $USER'")
    return f"load it with 'launchctl bootstrap gui/$(id -u) {svc.path}'"


@service_app.command("install")
def install(
    dry_run: DryRun = False,
    no_start: Annotated[bool, typer.Option("--no-start", help="Write the service file only; do not enable or start it.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Install and start the service (safe to run again: an unchanged file is left alone)."""
    svc = _service()
    out = svc.install(dry_run=dry_run, start=not no_start)
    if json_:
        from cairn.cli.render import print_json

        print_json(out)
    elif dry_run:
        sys.stdout.write(out["content"])
        sys.stderr.write(f"would write {out['path']} ({out['action']})\n")
        for c in out["commands"]:
            sys.stderr.write(f"would run: {c}\n")
    else:
        sys.stderr.write(f"{out['action']} {out['path']}\n")
        for c in out["commands"]:
            sys.stderr.write(f"ran: {c}\n")
    if out["command_errors"]:
        from cairn.cli.render import error

        for e in out["command_errors"]:
            error(e)
        error(f"the service file is written, but it could not be started; {_hint(svc)}")
        raise typer.Exit(1)


@service_app.command("uninstall")
def uninstall(dry_run: DryRun = False, json_: JsonOpt = False) -> None:
    """Stop the service and remove exactly what install wrote (the store and logs stay)."""
    svc = _service()
    out = svc.uninstall(dry_run=dry_run)
    if json_:
        from cairn.cli.render import print_json

        print_json(out)
    else:
        verb = "would remove" if dry_run else "removed"
        if out["action"] == "not installed":
            sys.stderr.write(f"not installed ({out['path']} does not exist)\n")
        for c in out["commands"]:
            sys.stderr.write(f"{'would run' if dry_run else 'ran'}: {c}\n")
        for p in out["removed"]:
            sys.stderr.write(f"{verb} {p}\n")
    for e in out["command_errors"]:
        from cairn.cli.render import warn

        warn(f"warning: {e}")


@service_app.command("status")
def status(json_: JsonOpt = False) -> None:
    """Whether the service is installed, current, enabled and running (exit 3: not installed)."""
    from cairn.config import load_settings
    from cairn.daemon.status import DaemonPaths, read_status

    svc = _service()
    out = svc.status()
    s = load_settings()
    d = read_status(DaemonPaths.for_store(s.db_path, s.log_dir))
    out["daemon"] = {k: d.get(k) for k in ("state", "running", "pid", "started_at")}
    if json_:
        from cairn.cli.render import print_json

        print_json(out)
    else:
        lines = [f"{out['kind']}: {out['path']}"]
        if not out["installed"]:
            lines.append("  not installed (run 'cairn service install')")
        else:
            lines.append("  installed" + ("" if out["ours"] else " (not written by cairn)")
                         + ("" if out["current"] else
                            "; out of date: run 'cairn service install' to update it"))
            lines.append(f"  enabled: {out['enabled']}, active: {out['active']}")
            if out.get("manager"):
                lines.append(f"  service manager: {out['manager']}")
        daemon = out["daemon"]
        lines.append(f"  daemon: {'running, pid ' + str(daemon['pid']) if daemon['running'] else 'not running'}")
        sys.stdout.write("\n".join(lines) + "\n")
    if not out["installed"]:
        raise typer.Exit(3)


@service_app.command("path")
def path() -> None:
    """Print where the service file is (or would be) written."""
    sys.stdout.write(f"{_service().path}\n")


def register(app: typer.Typer) -> None:
    app.add_typer(service_app, name="service")
