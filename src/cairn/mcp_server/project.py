"""Which project an agent is working in: the git top-level of the client's roots, else of the
server's working directory. A project is named by its top-level folder's name, as the agent
session ingester names it, so memories typed by an agent and those read from its logs agree.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)


def git_toplevel(path: Path) -> Path | None:
    """The nearest folder at or above `path` holding `.git` (a folder, or a file in worktrees
    and submodules); None outside a repository. No `git` process: this runs per session."""
    try:
        p = path.expanduser().resolve()
    except (OSError, RuntimeError):
        return None
    if p.is_file():
        p = p.parent
    for candidate in (p, *p.parents):
        try:
            if (candidate / ".git").exists():
                return candidate
        except OSError:
            return None
    return None


def project_name(toplevel: Path) -> str:
    return toplevel.name or str(toplevel)


def root_path(uri: str) -> Path | None:
    """A `file://` root URI as a local path; None for any other scheme."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    path = unquote(parsed.path)
    if os.name == "nt" and len(path) > 2 and path[0] == "/" and path[2] == ":":
        path = path[1:]  # file:///C:/x -> C:/x
    return Path(path) if path else None


def from_roots(uris: Iterable[str]) -> str | None:
    """The project of the first root that lies in a git repository."""
    for uri in uris:
        path = root_path(uri)
        if path is None:
            continue
        top = git_toplevel(path)
        if top is not None:
            return project_name(top)
    return None


def from_cwd(cwd: Path | None = None) -> str | None:
    top = git_toplevel(cwd or Path.cwd())
    return project_name(top) if top is not None else None
