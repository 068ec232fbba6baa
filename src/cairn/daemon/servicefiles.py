"""`cairn service`: a systemd user unit (Linux) or a launchd agent (macOS) that runs
`cairn daemon run`, restarts it on failure, and gives it the right PATH and HOME.

Rendering is pure (paths and environment passed in); install writes the file atomically and
records, in a comment inside it, the folders it had to create, so uninstall removes exactly
what install wrote. The service manager is driven through a `run(argv)` callable, so tests
and `--dry-run` never touch it.
"""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cairn.errors import CairnError

Kind = Literal["systemd", "launchd"]
UNIT_NAME = "cairn.service"
LABEL = "local.cairn.daemon"
MARKER = "Written by `cairn service install`; `cairn service uninstall` removes it."
DIRS_TAG = "cairn-created-dirs:"
PASS_ENV = ("CAIRN_HOME", "CAIRN_DB", "CAIRN_EXTRACTOR")

Runner = Callable[[Sequence[str]], tuple[int, str]]


def service_kind(platform: str | None = None) -> Kind:
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return "systemd"
    if platform == "darwin":
        return "launchd"
    raise CairnError(f"cairn service supports Linux (systemd) and macOS (launchd), not {platform};"
                     " run 'cairn daemon run' under your own service manager")


def program_args(python: str | None = None) -> list[str]:
    """How the service starts the daemon: the `cairn` script next to this Python (a venv's
    bin), else this Python with `-m cairn`. Symlinks are kept: resolving a venv's python
    would lose the venv."""
    py = Path(python or sys.executable).absolute()
    script = py.parent / ("cairn.exe" if os.name == "nt" else "cairn")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "daemon", "run"]
    return [str(py), "-m", "cairn", "daemon", "run"]


def service_env(home: Path, env: Mapping[str, str], program: Sequence[str],
                platform: str | None = None) -> dict[str, str]:
    """PATH (cairn's bin, where tesseract is, the system folders), HOME, and cairn's own
    variables when they are set, made absolute."""
    platform = platform or sys.platform
    dirs = [str(Path(program[0]).parent)]
    tess = shutil.which("tesseract", path=env.get("PATH"))
    if tess:
        dirs.append(str(Path(tess).parent))
    if platform == "darwin":
        dirs += ["/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
    else:
        dirs += ["/usr/local/bin", "/usr/bin", "/bin"]
    out = {"PATH": ":".join(dict.fromkeys(dirs)), "HOME": str(home)}
    for key in PASS_ENV:
        if env.get(key):
            val = env[key]
            out[key] = val if key == "CAIRN_EXTRACTOR" else str(Path(val).expanduser().absolute())
    return out


def unit_path(kind: Kind, home: Path, env: Mapping[str, str]) -> Path:
    if kind == "systemd":
        base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
        return base / "systemd" / "user" / UNIT_NAME
    return home / "Library" / "LaunchAgents" / f"{LABEL}.plist"


# ---------------------------------------------------------------- rendering

def _sd_quote(arg: str) -> str:
    """One word of a systemd command line or assignment: specifiers (%) and variables ($)
    escaped, quoted when it holds anything but plain path characters."""
    arg = arg.replace("%", "%%")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", arg):
        return arg.replace("$", "$$")
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$") + '"'


def render_systemd(program: Sequence[str], env: Mapping[str, str],
                   created_dirs: Sequence[Path] = ()) -> str:
    lines = [f"# {MARKER}"]
    if created_dirs:
        lines.append(f"# {DIRS_TAG} " + os.pathsep.join(str(d) for d in created_dirs))
    lines += [
        "[Unit]",
        "Description=cairn: local-first personal memory daemon",
        # Five failed starts in five minutes: stop trying (a missing model will not fix itself).
        "StartLimitIntervalSec=300",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=exec",
        "ExecStart=" + " ".join(_sd_quote(a) for a in program),
        "Restart=on-failure",
        "RestartSec=10",
        "RestartPreventExitStatus=2",  # a config error: restarting will not help
        "TimeoutStopSec=20",
        "WorkingDirectory=~",
        "Nice=10",
    ]
    for k, v in env.items():
        lines.append("Environment=" + _sd_quote(f"{k}={v}"))
    lines.append("Environment=PYTHONUNBUFFERED=1")
    lines += ["", "[Install]", "WantedBy=default.target", ""]
    return "\n".join(lines)


def launchd_dict(program: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "Label": LABEL,
        "ProgramArguments": list(program),
        "EnvironmentVariables": {**env, "PYTHONUNBUFFERED": "1"},
        "WorkingDirectory": env.get("HOME", "/"),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},  # restart after a crash or a failed start
        "ThrottleInterval": 10,
        "ExitTimeOut": 20,
        "ProcessType": "Background",
        "LowPriorityIO": True,
        "Nice": 10,
    }


def render_launchd(program: Sequence[str], env: Mapping[str, str],
                   created_dirs: Sequence[Path] = ()) -> str:
    body = plistlib.dumps(launchd_dict(program, env), sort_keys=False).decode("utf-8")
    note = f"<!-- {MARKER} -->\n"
    if created_dirs:
        note += f"<!-- {DIRS_TAG} {os.pathsep.join(str(d) for d in created_dirs)} -->\n"
    head, sep, rest = body.partition("<plist")
    return head + note + sep + rest


def _created_dirs(text: str) -> list[Path]:
    for line in text.splitlines():
        if DIRS_TAG in line:
            raw = line.split(DIRS_TAG, 1)[1].replace("-->", "").strip()
            return [Path(p) for p in raw.split(os.pathsep) if p]
    return []


def _without_dirs_note(text: str) -> str:
    return "\n".join(x for x in text.splitlines() if DIRS_TAG not in x)


# ---------------------------------------------------------------- the service manager

def default_runner(argv: Sequence[str]) -> tuple[int, str]:
    try:
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return 127, f"{argv[0]}: command not found"
    except subprocess.TimeoutExpired:
        return 124, f"{' '.join(argv)}: timed out"
    return p.returncode, (p.stdout + p.stderr).strip()


@dataclass
class Service:
    """The service file for this user and platform, and the commands that drive it."""

    kind: Kind
    path: Path
    program: list[str]
    env: dict[str, str]
    uid: int = field(default_factory=lambda: os.getuid() if hasattr(os, "getuid") else 0)

    @classmethod
    def for_user(cls, *, home: Path | None = None, env: Mapping[str, str] | None = None,
                 platform: str | None = None, python: str | None = None) -> Service:
        env = os.environ if env is None else env
        home = home if home is not None else Path(env.get("HOME") or Path.home())
        kind = service_kind(platform)
        program = program_args(python)
        return cls(kind, unit_path(kind, home, env), program,
                   service_env(home, env, program, "darwin" if kind == "launchd" else "linux"))

    def render(self, created_dirs: Sequence[Path] = ()) -> str:
        if self.kind == "systemd":
            return render_systemd(self.program, self.env, created_dirs)
        return render_launchd(self.program, self.env, created_dirs)

    # commands ---------------------------------------------------------

    def _target(self) -> str:
        return f"gui/{self.uid}"

    def start_commands(self, updated: bool) -> list[list[str]]:
        if self.kind == "systemd":
            # restart picks up a changed unit; start is a no-op for a running one.
            return [["systemctl", "--user", "daemon-reload"],
                    ["systemctl", "--user", "enable", UNIT_NAME],
                    ["systemctl", "--user", "restart" if updated else "start", UNIT_NAME]]
        cmds = []
        if updated:
            cmds.append(["launchctl", "bootout", f"{self._target()}/{LABEL}"])
        cmds.append(["launchctl", "bootstrap", self._target(), str(self.path)])
        return cmds

    def stop_commands(self) -> list[list[str]]:
        if self.kind == "systemd":
            return [["systemctl", "--user", "disable", "--now", UNIT_NAME]]
        return [["launchctl", "bootout", f"{self._target()}/{LABEL}"]]

    def after_remove_commands(self) -> list[list[str]]:
        if self.kind == "systemd":
            return [["systemctl", "--user", "daemon-reload"],
                    ["systemctl", "--user", "reset-failed", UNIT_NAME]]
        return []

    # state ------------------------------------------------------------

    def is_ours(self, text: str) -> bool:
        if self.kind == "systemd":
            return MARKER in text
        try:
            return bool(plistlib.loads(text.encode("utf-8")).get("Label") == LABEL)
        except Exception:  # noqa: BLE001 - a hand-written or broken plist is not ours to remove
            return False

    def is_current(self, text: str) -> bool:
        """The file on disk says what install would write now."""
        if self.kind == "systemd":
            return _without_dirs_note(text) == _without_dirs_note(self.render())
        try:
            return bool(plistlib.loads(text.encode("utf-8")) == launchd_dict(self.program,
                                                                              self.env))
        except Exception:  # noqa: BLE001 - a broken plist is simply not current
            return False

    def install(self, *, run: Runner = default_runner, dry_run: bool = False,
                start: bool = True) -> dict[str, Any]:
        """Write the service file (unchanged if already current) and start the service."""
        old = _read(self.path)
        if old is not None and not self.is_ours(old):
            raise CairnError(f"{self.path} exists and was not written by cairn; move it away"
                             " or remove it, then run 'cairn service install' again")
        created = _created_dirs(old) if old is not None else _missing_dirs(self.path.parent)
        text = self.render(created)
        if old is None:
            action = "created"
        elif self.is_current(old):
            action = "unchanged"
        else:
            action = "updated"
        cmds = self.start_commands(updated=action == "updated") if start else []
        if cmds and self.kind == "launchd" and action == "unchanged":
            # Already written; bootstrapping a loaded agent again is an error, so ask first.
            rc, _ = run(["launchctl", "print", f"{self._target()}/{LABEL}"])
            if rc == 0:
                cmds = []
        out: dict[str, Any] = {"kind": self.kind, "path": str(self.path), "action": action,
                               "dry_run": dry_run, "commands": [" ".join(c) for c in cmds],
                               "content": text, "command_errors": []}
        if dry_run:
            return out
        if action != "unchanged":
            for d in created:
                d.mkdir(exist_ok=True)
            _atomic_write(self.path, text)
        out["command_errors"] = _run_all(run, cmds)
        return out

    def uninstall(self, *, run: Runner = default_runner, dry_run: bool = False,
                  ) -> dict[str, Any]:
        """Stop the service and remove what install wrote: the file and the folders it made."""
        old = _read(self.path)
        if old is None:
            return {"kind": self.kind, "path": str(self.path), "action": "not installed",
                    "dry_run": dry_run, "commands": [], "removed": [], "command_errors": []}
        if not self.is_ours(old):
            raise CairnError(f"{self.path} was not written by cairn; not removing it")
        created = _created_dirs(old)
        cmds = self.stop_commands()
        after = self.after_remove_commands()
        removed = [str(self.path)] + [str(d) for d in reversed(created)]
        out: dict[str, Any] = {"kind": self.kind, "path": str(self.path), "action": "removed",
                               "dry_run": dry_run,
                               "commands": [" ".join(c) for c in cmds + after],
                               "removed": removed, "command_errors": []}
        if dry_run:
            return out
        errors = _run_all(run, cmds)
        self.path.unlink()
        gone = [str(self.path)]
        for d in reversed(created):  # deepest first; only while empty
            try:
                d.rmdir()
                gone.append(str(d))
            except OSError:
                break
        out["removed"] = gone
        # After removal, reload so the manager forgets the unit; its own errors do not matter.
        _run_all(run, after)
        out["command_errors"] = errors
        return out

    def status(self, *, run: Runner = default_runner, query: bool = True) -> dict[str, Any]:
        text = _read(self.path)
        out: dict[str, Any] = {"kind": self.kind, "path": str(self.path),
                               "installed": text is not None,
                               "ours": bool(text is not None and self.is_ours(text)),
                               "current": bool(text is not None and self.is_current(text)),
                               "enabled": None, "active": None, "manager": None}
        if not query:
            return out
        if self.kind == "systemd":
            rc, msg = run(["systemctl", "--user", "is-enabled", UNIT_NAME])
            out["enabled"] = msg.splitlines()[-1] if msg else ("enabled" if rc == 0 else None)
            rc, msg = run(["systemctl", "--user", "is-active", UNIT_NAME])
            out["active"] = msg.splitlines()[-1] if msg else None
            if rc not in (0, 3, 4) or (msg and "bus" in msg.lower()):
                out["manager"] = msg or f"systemctl exited {rc}"
        else:
            rc, msg = run(["launchctl", "print", f"{self._target()}/{LABEL}"])
            out["enabled"] = "loaded" if rc == 0 else "not loaded"
            m = re.search(r"^\s*state = (\S+)", msg, re.MULTILINE)
            out["active"] = m.group(1) if m else ("inactive" if rc != 0 else "unknown")
        return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CairnError(f"cannot read {path}: {e.strerror or e}") from None


def _missing_dirs(folder: Path) -> list[Path]:
    """The folders install will have to create, outermost first."""
    out = []
    p = folder
    while not p.exists():
        out.append(p)
        if p.parent == p:
            break
        p = p.parent
    return list(reversed(out))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)  # the umask may have narrowed it; the manager only reads it
    os.replace(tmp, path)


def _run_all(run: Runner, cmds: Sequence[Sequence[str]]) -> list[str]:
    errors = []
    for c in cmds:
        rc, msg = run(c)
        # bootout / reset-failed of something not loaded is what we wanted anyway.
        if rc != 0 and c[1] not in ("bootout", "reset-failed"):
            errors.append(f"{' '.join(c)}: exit {rc}" + (f": {msg}" if msg else ""))
    return errors
