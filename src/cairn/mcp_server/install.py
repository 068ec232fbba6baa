"""`cairn mcp install --client ...`: add cairn to a coding agent's MCP config file.

The entry is merged into what the file already holds (other servers and settings stay as they
are), the previous file is kept as a timestamped backup, and the new one is written atomically
with the old file's permissions. JSON files may carry comments (VS Code's and Cursor's do):
they are read, but a rewritten file loses them, so the backup matters. Codex's TOML is edited
as text, so its comments survive.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cairn.errors import BadInput, CairnError

CLIENTS = ("claude-code", "cursor", "vscode", "codex", "claude-desktop")
ENV_KEYS = ("CAIRN_HOME", "CAIRN_DB")  # so the agent's server uses the store this shell uses


def _user_config(*parts: str) -> Path:
    """The per-user application config folder, as VS Code and Claude Desktop use it."""
    home = Path.home()
    if sys.platform == "darwin":
        return home.joinpath("Library", "Application Support", *parts)
    if os.name == "nt":
        return Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming").joinpath(*parts)
    return Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config").joinpath(*parts)


def _codex_home() -> Path:
    return Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")


@dataclass(frozen=True)
class Client:
    name: str
    path: Callable[[], Path]
    container: str          # the top-level key that holds the servers
    typed: bool = False     # the entry says "type": "stdio"
    toml: bool = False


SPECS = {
    "claude-code": Client("claude-code", lambda: Path.home() / ".claude.json", "mcpServers",
                          typed=True),
    "cursor": Client("cursor", lambda: Path.home() / ".cursor" / "mcp.json", "mcpServers"),
    "vscode": Client("vscode", lambda: _user_config("Code", "User", "mcp.json"), "servers",
                     typed=True),
    "codex": Client("codex", lambda: _codex_home() / "config.toml", "mcp_servers", toml=True),
    "claude-desktop": Client("claude-desktop",
                             lambda: _user_config("Claude", "claude_desktop_config.json"),
                             "mcpServers"),
}


@dataclass
class InstallResult:
    client: str
    path: Path
    name: str
    action: str                   # added, updated, unchanged
    entry: dict[str, Any]
    dry_run: bool
    backup: Path | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"client": self.client, "path": str(self.path), "name": self.name,
                "action": self.action, "entry": self.entry, "dry_run": self.dry_run,
                "backup": str(self.backup) if self.backup else None, "notes": self.notes}


def server_command() -> list[str]:
    """How an agent starts `cairn mcp`: an absolute path, because GUI apps have their own PATH."""
    exe_dir = Path(sys.executable).parent
    for name in ("cairn", "cairn.exe"):
        if (exe_dir / name).is_file():
            return [str(exe_dir / name), "mcp"]
    found = shutil.which("cairn")
    if found:
        return [str(Path(found).resolve()), "mcp"]
    return [sys.executable, "-m", "cairn", "mcp"]


def make_entry(client: Client, command: list[str] | None = None,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = command or server_command()
    if env is None:
        env = {k: str(Path(v).expanduser().resolve()) for k in ENV_KEYS
               if (v := os.environ.get(k))}
    entry: dict[str, Any] = {"type": "stdio"} if client.typed else {}
    entry |= {"command": cmd[0], "args": cmd[1:]}
    if env:
        entry["env"] = env
    return entry


# ---------------------------------------------------------------- JSON with comments


def strip_jsonc(text: str) -> str:
    """JSON with // and /* */ comments and trailing commas, as plain JSON."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


def _read_json(path: Path, text: str) -> tuple[dict[str, Any], bool]:
    """The parsed object, and whether comments or trailing commas had to be dropped."""
    if not text.strip():
        return {}, False
    try:
        data, lossy = json.loads(text), False
    except json.JSONDecodeError:
        try:
            data, lossy = json.loads(strip_jsonc(text)), True
        except json.JSONDecodeError as e:
            raise BadInput(f"{path} is not valid JSON (line {e.lineno}: {e.msg}); fix it or"
                           " move it away, then run this again") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path} does not hold a JSON object; fix it or move it away")
    return data, lossy


def _merge_json(client: Client, path: Path, text: str, name: str,
                entry: dict[str, Any]) -> tuple[str | None, str, list[str]]:
    data, lossy = _read_json(path, text)
    servers = data.get(client.container)
    if servers is None:
        servers = data[client.container] = {}
    if not isinstance(servers, dict):
        raise BadInput(f"{path}: '{client.container}' is not an object; fix it by hand")
    old = servers.get(name)
    if old == entry:
        return None, "unchanged", []
    servers[name] = entry
    notes = ["comments in the old file are not kept (the backup has them)"] if lossy else []
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n", \
        ("added" if old is None else "updated"), notes


# ---------------------------------------------------------------- TOML (codex)

_HEADER = re.compile(r"^\s*\[\[?(?P<key>[^\[\]]+)\]\]?\s*(#.*)?$")


def _table_path(line: str) -> tuple[str, ...] | None:
    m = _HEADER.match(line)
    if not m:
        return None
    try:
        node: Any = tomllib.loads(f"[{m.group('key')}]\n")
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while isinstance(node, dict) and len(node) == 1:
        key = next(iter(node))
        path.append(key)
        node = node[key]
    return tuple(path)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                                for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def toml_block(container: str, name: str, entry: dict[str, Any]) -> str:
    lines = [f"[{_toml_key(container)}.{_toml_key(name)}]"]
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in entry.items()]
    return "\n".join(lines)


def _merge_toml(client: Client, path: Path, text: str, name: str,
                entry: dict[str, Any]) -> tuple[str | None, str, list[str]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"{path} is not valid TOML ({e}); fix it, then run this again") from None
    old = (data.get(client.container) or {}).get(name)
    if old == entry:
        return None, "unchanged", []
    ours = (client.container, name)
    kept: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        tp = _table_path(line)
        if tp is not None:
            skipping = tp[:2] == ours
        if not skipping:
            kept.append(line)
    body = "".join(kept).rstrip("\n")
    block = toml_block(client.container, name, entry)
    new = (body + "\n\n" if body else "") + block + "\n"
    try:
        check = tomllib.loads(new)
    except tomllib.TOMLDecodeError:
        check = {}
    if check.get(client.container, {}).get(name) != entry:
        raise CairnError(f"could not edit {path} safely (is [{client.container}.{name}] defined"
                         f" inline?); add this to it by hand:\n{block}")
    return new, ("added" if old is None else "updated"), []


def render_entry(client: Client, name: str, entry: dict[str, Any]) -> str:
    """The entry as it appears in the client's file (for --dry-run and messages)."""
    if client.toml:
        return toml_block(client.container, name, entry)
    return json.dumps({client.container: {name: entry}}, indent=2, ensure_ascii=False)


# ---------------------------------------------------------------- install


def install(client_name: str, *, name: str = "cairn", dry_run: bool = False,
            path: Path | None = None, command: list[str] | None = None,
            now: datetime | None = None) -> InstallResult:
    """Merge cairn's entry into the client's config file (or say what would change)."""
    client = SPECS.get(client_name)
    if client is None:
        raise BadInput(f"unknown client {client_name!r}; choose one of {', '.join(CLIENTS)}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise BadInput(f"server name {name!r}: use letters, digits, '-', '_' or '.'")
    target = (path or client.path()).expanduser()
    entry = make_entry(client, command)
    try:
        text = target.read_text(encoding="utf-8") if target.exists() else ""
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"cannot read {target} ({e})") from None
    merge = _merge_toml if client.toml else _merge_json
    new, action, notes = merge(client, target, text, name, entry)
    result = InstallResult(client.name, target, name, action, entry, dry_run, notes=notes)
    if new is None or dry_run:
        return result
    try:
        _write(target, new, result, now)
    except OSError as e:
        raise CairnError(f"cannot write {target} ({e.strerror or e}); nothing was changed"
                         ) from None
    return result


def _write(target: Path, new: str, result: InstallResult, now: datetime | None) -> None:
    """Back up the old file, then replace it atomically, keeping its mode (new files: 0600)."""
    if target.exists():
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        result.backup = target.with_name(f"{target.name}.cairn-backup-{stamp}")
        shutil.copy2(target, result.backup)
        mode = target.stat().st_mode & 0o777
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = 0o600
    tmp = target.with_name(f".{target.name}.cairn-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(new)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, target)
