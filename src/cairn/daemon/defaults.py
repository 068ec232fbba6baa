"""What the daemon watches: the `[sources]` of config.toml, or, when none are configured, the
usual places on this machine that exist (notes folders, Obsidian vaults, coding-agent session
logs, the screenshot folder). Pure lookups: the home folder and environment are passed in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cairn.config import SOURCE_KINDS, Settings

# Which adapters a folder of each kind feeds. A notes folder also takes cairn chat files
# dropped into it; it does not OCR the images a vault keeps as attachments.
KIND_ADAPTERS: dict[str, frozenset[str]] = {
    "notes": frozenset({"note", "chat"}),
    "chats": frozenset({"chat"}),
    "agent_sessions": frozenset({"agent_session"}),
    "screenshots": frozenset({"screenshot"}),
}


@dataclass(frozen=True)
class Root:
    """One watched folder: what it is watched for and where that came from."""

    path: Path
    kinds: tuple[str, ...]                  # notes, chats, agent_sessions, screenshots
    origin: str                             # config or default
    why: str = ""                           # for defaults: how it was found
    adapters: frozenset[str] = field(default_factory=frozenset)

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "kinds": list(self.kinds), "origin": self.origin,
                "why": self.why}


def watched_roots(settings: Settings, *, home: Path | None = None,
                  env: Mapping[str, str] | None = None) -> tuple[list[Root], bool]:
    """The folders to watch and whether they are the defaults (no `[sources]` configured).

    Configured folders are kept even when missing (they are watched once they appear);
    defaults are only the ones that exist.
    """
    configured = {k: settings.source_folders(k) for k in SOURCE_KINDS}
    if any(v is not None for v in configured.values()):
        found: list[tuple[str, Path, str]] = []
        for kind, folders in configured.items():
            for f in folders or []:
                found.append((kind, _abs(f), ""))
        return _merge(found, "config"), False
    home = home if home is not None else Path.home()
    env = os.environ if env is None else env
    return _merge(list(default_locations(home, env)), "default"), True


def _abs(p: Path) -> Path:
    try:
        return p.expanduser().resolve()
    except (OSError, RuntimeError):
        return p.expanduser().absolute()


def _merge(found: Iterable[tuple[str, Path, str]], origin: str) -> list[Root]:
    """One Root per folder, with every kind it was named for."""
    by_path: dict[Path, tuple[list[str], list[str]]] = {}
    for kind, path, why in found:
        kinds, whys = by_path.setdefault(path, ([], []))
        if kind not in kinds:
            kinds.append(kind)
        if why and why not in whys:
            whys.append(why)
    roots = []
    for path, (kinds, whys) in by_path.items():
        adapters = frozenset().union(*(KIND_ADAPTERS[k] for k in kinds))
        roots.append(Root(path=path, kinds=tuple(kinds), origin=origin, why="; ".join(whys),
                          adapters=adapters))
    return roots


def default_locations(home: Path, env: Mapping[str, str]) -> Iterable[tuple[str, Path, str]]:
    """(kind, folder, how it was found) for each usual place that exists."""
    seen: set[tuple[str, Path]] = set()

    def ok(kind: str, p: Path, why: str) -> Iterable[tuple[str, Path, str]]:
        p = _abs(p)
        if (kind, p) in seen or not p.is_dir():
            return []
        seen.add((kind, p))
        return [(kind, p, why)]

    for name in ("Notes", "notes", "Documents/Notes"):
        yield from ok("notes", home / name, f"~/{name}")
    for vault in obsidian_vaults(home, env):
        yield from ok("notes", vault, "Obsidian vault")
    yield from ok("chats", home / "Documents" / "chat-exports", "~/Documents/chat-exports")
    claude = Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR") else home / ".claude"
    yield from ok("agent_sessions", claude / "projects", "Claude Code sessions")
    codex = Path(env["CODEX_HOME"]) if env.get("CODEX_HOME") else home / ".codex"
    yield from ok("agent_sessions", codex / "sessions", "Codex sessions")
    for p, why in screenshot_folders(home, env):
        yield from ok("screenshots", p, why)


def obsidian_vaults(home: Path, env: Mapping[str, str]) -> list[Path]:
    """Vaults Obsidian knows (its obsidian.json), else the usual vault folders."""
    configs = [
        Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "obsidian" / "obsidian.json",
        home / ".var/app/md.obsidian.Obsidian/config/obsidian/obsidian.json",  # flatpak
        home / "Library/Application Support/obsidian/obsidian.json",  # macOS
    ]
    if env.get("APPDATA"):
        configs.append(Path(env["APPDATA"]) / "obsidian" / "obsidian.json")
    vaults: list[Path] = []
    for cfg in configs:
        try:
            data = json.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for v in (data.get("vaults") or {}).values() if isinstance(data, dict) else []:
            if isinstance(v, dict) and isinstance(v.get("path"), str):
                vaults.append(Path(v["path"]).expanduser())
    for name in ("Obsidian", "Documents/Obsidian", "Documents/Obsidian Vault", "Obsidian Vault"):
        p = home / name
        if (p / ".obsidian").is_dir():
            vaults.append(p)
        elif p.is_dir():  # a folder of vaults
            vaults += [c for c in sorted(p.iterdir()) if (c / ".obsidian").is_dir()]
    return vaults


_XDG_PICTURES = re.compile(r'^\s*XDG_PICTURES_DIR\s*=\s*"?([^"\n]*)"?\s*$', re.MULTILINE)


def screenshot_folders(home: Path, env: Mapping[str, str],
                       platform: str | None = None) -> list[tuple[Path, str]]:
    """Where this platform's screenshot tool saves."""
    platform = platform or sys.platform
    out: list[tuple[Path, str]] = []
    if platform == "darwin":
        loc = _mac_screencapture_location()
        if loc:
            out.append((Path(loc).expanduser(), "macOS screencapture location"))
        out.append((home / "Desktop", "macOS screenshots (Desktop)"))
        return out
    pictures = home / "Pictures"
    if platform.startswith("linux"):
        cfg = Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "user-dirs.dirs"
        try:
            m = _XDG_PICTURES.search(cfg.read_text(encoding="utf-8"))
            if m:
                pictures = Path(m.group(1).replace("$HOME", str(home)))
        except OSError:
            pass
    out.append((pictures / "Screenshots", "screenshots folder"))
    if platform == "win32" and env.get("OneDrive"):
        out.append((Path(env["OneDrive"]) / "Pictures" / "Screenshots", "OneDrive screenshots"))
    return out


def _mac_screencapture_location() -> str | None:  # pragma: no cover - macOS only
    try:
        out = subprocess.run(["defaults", "read", "com.apple.screencapture", "location"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
