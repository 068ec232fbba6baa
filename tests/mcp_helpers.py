"""Shared by the tests/test_mcp_*.py files: a git repo maker, a free port, the stdio command."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
CAIRN = str(BIN / "cairn")


def git_repo(path: Path) -> Path:
    """A folder that looks like a git top-level (a .git folder is all cairn looks for)."""
    (path / ".git").mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(home: Path, **extra: str) -> dict[str, str]:
    env = {"CAIRN_HOME": str(home), "NO_COLOR": "1", "PATH": os.environ.get("PATH", ""),
           "OPENBLAS_NUM_THREADS": "1"}
    return {**env, **extra}


def roots_callback(*paths: Path) -> Any:
    import mcp_types as types

    async def list_roots(_ctx: Any) -> Any:
        return types.ListRootsResult(roots=[types.Root(uri=p.as_uri(), name=p.name)
                                            for p in paths])

    return list_roots


def text_of(result: Any) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")
