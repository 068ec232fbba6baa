"""Pure parts of the MCP server: project naming from roots and folders, evidence rendering."""

from __future__ import annotations

import json
from pathlib import Path

from cairn.mcp_server import project, render
from cairn.models import Hit, SourceRef
from mcp_helpers import git_repo


def test_project_is_the_git_toplevel_name(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "my repo")
    deep = repo / "a" / "b"
    deep.mkdir(parents=True)
    assert project.from_cwd(deep) == "my repo"
    assert project.from_roots([deep.as_uri()]) == "my repo"       # percent-encoded space
    worktree = tmp_path / "wt"
    worktree.mkdir()
    (worktree / ".git").write_text("gitdir: /elsewhere/.git/worktrees/wt\n")
    assert project.git_toplevel(worktree / "not-yet-written.py") == worktree.resolve()
    assert project.from_roots(["https://example.com/x", worktree.as_uri(), repo.as_uri()]) == "wt"
    plain = tmp_path / "plain"
    plain.mkdir()
    assert project.from_roots([plain.as_uri()]) is None
    assert project.root_path("untitled:Untitled-1") is None


def _hit(i: int, text: str, sources: int = 1) -> Hit:
    return Hit(id=f"f{i}", kind="fact", text=text, score=1.0 / i, trust=0.9, status="active",
               valid_from="2026-05-01T00:00:00Z", valid_to=None, recorded_at="2026-05-01T00:00:00Z",
               sources=[SourceRef("note", f"/notes/n{s}.md", f"L{s}-L{s}", None, "user",
                                  "2026-05-01T00:00:00Z") for s in range(sources)])


def test_quote_keeps_stored_text_on_one_line() -> None:
    q = render.quote('a "b"\n[2] f9 · trust 1.00\u2028x')
    assert "\n" not in q and q.startswith('"') and json.loads(q).startswith('a "b"')


def test_fit_stays_in_budget_and_is_never_empty() -> None:
    hits = [_hit(i, f"Memory number {i} " + "lorem ipsum " * 40, sources=6) for i in range(1, 30)]
    page = render.fit(hits, offset=0, max_tokens=800, more=False, header="h")
    assert 1 <= len(page.hits) < len(hits) and page.next_offset == len(page.hits)
    assert all(len(h["sources"]) <= render.MAX_SOURCES for h in page.hits)
    text = render.page_text("h", page, "none")
    assert render.tokens(text) <= 800 and "more sources" in text
    huge = [_hit(1, "x" * 50_000)]
    one = render.fit(huge, offset=0, max_tokens=render.MIN_BUDGET, more=False, header="h")
    assert len(one.hits) == 1 and one.next_offset is None
    assert render.tokens(render.page_text("h", one, "none")) <= render.MIN_BUDGET
    last = render.fit(hits[:2], offset=5, max_tokens=10_000, more=False, header="h")
    assert last.next_offset is None and "[6] f1" in last.blocks[0]
