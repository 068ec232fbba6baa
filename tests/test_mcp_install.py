"""`cairn mcp install --client ...`: the entry lands where each client reads it, merged with
what is there, with a backup, and --dry-run changes nothing."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from mcp_helpers import CAIRN

CLIENTS = ["claude-code", "cursor", "vscode", "codex", "claude-desktop"]


@pytest.fixture
def user(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fake user home for the clients' config files (and the env the CLI gets)."""
    fake = tmp_path / "user"
    fake.mkdir()
    env = {"HOME": str(fake), "XDG_CONFIG_HOME": str(fake / ".config"),
           "APPDATA": str(fake / "AppData"), "CODEX_HOME": str(fake / ".codex")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def target(client: str) -> Path:
    from cairn.mcp_server.install import SPECS

    return SPECS[client].path()


def read(path: Path) -> Any:
    text = path.read_text()
    return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)


def servers(client: str, data: Any) -> Any:
    from cairn.mcp_server.install import SPECS

    return data[SPECS[client].container]


@pytest.mark.parametrize("client", CLIENTS)
def test_install_writes_a_working_entry(client: str, user: dict[str, str], home: Path) -> None:
    proc = run_cli("mcp", "install", "--client", client, home=home, env=user, check=True)
    path = target(client)
    assert str(path) in proc.stdout and "added" in proc.stdout
    entry = servers(client, read(path))["cairn"]
    assert entry["command"] == CAIRN and entry["args"] == ["mcp"]
    assert entry["env"] == {"CAIRN_HOME": str(home.resolve())}
    if client in ("claude-code", "vscode"):
        assert entry["type"] == "stdio"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = run_cli("mcp", "install", "--client", client, home=home, env=user, check=True)
    assert "already set up" in again.stdout
    assert list(path.parent.glob(path.name + ".cairn-backup-*")) == []


@pytest.mark.parametrize("client", ["claude-code", "cursor", "claude-desktop"])
def test_install_merges_and_keeps_a_backup(client: str, user: dict[str, str], home: Path) -> None:
    path = target(client)
    path.parent.mkdir(parents=True, exist_ok=True)
    before = {"theme": "dark", "mcpServers": {"github": {"command": "gh-mcp", "args": []},
                                              "cairn": {"command": "/old/cairn", "args": []}}}
    path.write_text(json.dumps(before))
    os.chmod(path, 0o644)
    proc = run_cli("mcp", "install", "--client", client, home=home, env=user, check=True)
    assert "updated" in proc.stdout
    after = read(path)
    assert after["theme"] == "dark"
    assert after["mcpServers"]["github"] == before["mcpServers"]["github"]
    assert after["mcpServers"]["cairn"]["command"] == CAIRN
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the file keeps its mode
    backups = list(path.parent.glob(path.name + ".cairn-backup-*"))
    assert len(backups) == 1 and json.loads(backups[0].read_text()) == before


def test_dry_run_changes_nothing(user: dict[str, str], home: Path) -> None:
    path = target("cursor")
    proc = run_cli("mcp", "install", "--client", "cursor", "--dry-run", home=home, env=user,
                   check=True)
    assert not path.exists()
    assert "would add" in proc.stdout and CAIRN in proc.stdout
    shown = json.loads(proc.stdout.split(":\n", 1)[1])
    assert shown["mcpServers"]["cairn"]["args"] == ["mcp"]
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {}}')
    run_cli("mcp", "install", "--client", "cursor", "--dry-run", home=home, env=user, check=True)
    assert path.read_text() == '{"mcpServers": {}}'


def test_vscode_jsonc_is_read_and_backed_up(user: dict[str, str], home: Path) -> None:
    path = target("vscode")
    path.parent.mkdir(parents=True)
    original = ('{\n  // my servers\n  "servers": {\n    "web": {"type": "http",'
                ' "url": "https://x.example/mcp"}, /* trailing */\n  },\n}\n')
    path.write_text(original)
    proc = run_cli("mcp", "install", "--client", "vscode", home=home, env=user, check=True)
    assert "comments" in proc.stdout
    data = read(path)
    assert data["servers"]["web"]["url"] == "https://x.example/mcp"
    assert data["servers"]["cairn"]["type"] == "stdio"
    backup = next(path.parent.glob(path.name + ".cairn-backup-*"))
    assert backup.read_text() == original


def test_codex_toml_keeps_comments_and_other_tables(user: dict[str, str], home: Path) -> None:
    path = target("codex")
    path.parent.mkdir(parents=True)
    path.write_text('# my codex setup\nmodel = "o4-mini"\n\n[mcp_servers.cairn]\n'
                    'command = "/old/cairn"\n\n[mcp_servers.cairn.env]\nX = "1"\n\n'
                    '[mcp_servers.docs]\ncommand = "docs-mcp" # keep me\n')
    run_cli("mcp", "install", "--client", "codex", home=home, env=user, check=True)
    text = path.read_text()
    assert "# my codex setup" in text and "# keep me" in text
    data = tomllib.loads(text)
    assert data["model"] == "o4-mini"
    assert data["mcp_servers"]["docs"]["command"] == "docs-mcp"
    assert data["mcp_servers"]["cairn"] == {"command": CAIRN, "args": ["mcp"],
                                            "env": {"CAIRN_HOME": str(home.resolve())}}


def test_bad_files_and_clients_are_one_line_errors(user: dict[str, str], home: Path) -> None:
    path = target("cursor")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    proc = run_cli("mcp", "install", "--client", "cursor", home=home, env=user)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: ") and "not valid JSON" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert path.read_text() == "{not json"
    proc = run_cli("mcp", "install", "--client", "emacs", home=home, env=user)
    assert proc.returncode == 1 and "choose one of claude-code" in proc.stderr


def test_an_installed_entry_starts_the_server(user: dict[str, str], home: Path) -> None:
    """What the client would run, run: the entry's command answers initialize."""
    import subprocess

    run_cli("mcp", "install", "--client", "claude-desktop", home=home, env=user, check=True)
    entry = read(target("claude-desktop"))["mcpServers"]["cairn"]
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "claude-ai", "version": "0"}}}
    proc = subprocess.run([entry["command"], *entry["args"]], input=json.dumps(init) + "\n",
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **entry["env"]})
    reply = json.loads(proc.stdout.splitlines()[0])
    assert reply["result"]["serverInfo"]["name"] == "cairn"
