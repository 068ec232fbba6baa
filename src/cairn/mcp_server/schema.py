"""The typed shapes the MCP tools return (their outputSchema): Pydantic only at this boundary.

`RecallResult` has the shape of `cairn recall --json` ({"query", "hits": [...]}) plus the scope
and the next page; a hit has exactly the keys of a `recall --json` hit.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Source(BaseModel):
    """Where a memory came from."""

    kind: str = Field(description="note, chat, agent_session, screenshot, cli, mcp or import.")
    uri: str = Field(description="The file path, or cli: / mcp:<client> for typed memories.")
    locator: str | None = Field(description="Message id, line range (L12-L20) or OCR box in the source.")
    speaker: str | None
    role: str | None = Field(description="user, assistant, other or third_party.")
    occurred_at: str | None = Field(description="When it was said or written (ISO-8601 UTC).")


class Hit(BaseModel):
    """One memory, as `cairn recall --json` prints it."""

    id: str = Field(description="f12 is a fact, e34 an episode (a verbatim piece of a source).")
    kind: Literal["fact", "episode"]
    text: str
    score: float
    trust: float = Field(description="0..1: typed by the user is high, third-party content low.")
    status: str = Field(description="active, superseded, quarantined or archived.")
    valid_from: str | None
    valid_to: str | None
    recorded_at: str | None
    sources: list[Source]


class RecallResult(BaseModel):
    query: str
    hits: list[Hit]
    project: str | None = Field(
        description="The project searched (with memories that belong to no project); null: all.")
    next_offset: int | None = Field(
        description="Pass as offset to get the next page; null when there is nothing more.")


class RecentResult(BaseModel):
    hits: list[Hit]
    project: str | None
    next_offset: int | None


class RememberResult(BaseModel):
    id: str
    text: str = Field(description="What was stored (secrets redacted).")
    action: Literal["added", "merged", "superseded"]
    status: str = Field(description="active, or quarantined when it reads like an instruction.")
    kind: str
    subject: str | None
    attribute: str | None
    project: str | None
    tags: list[str]
    pinned: bool
    superseded: int = Field(description="How many older facts this one replaced.")


class ForgottenFact(BaseModel):
    id: str
    text: str
    status: str


class ForgottenEpisode(BaseModel):
    id: str
    text: str
    uri: str
    locator: str | None


class ForgottenSource(BaseModel):
    id: int
    uri: str
    kind: str


class Deleted(BaseModel):
    facts: int
    episodes: int
    sources: int


class ForgetResult(BaseModel):
    """The shape of `cairn forget --json`, plus whether it was only a preview."""

    dry_run: bool
    deleted: Deleted
    facts: list[ForgottenFact]
    episodes: list[ForgottenEpisode]
    sources: list[ForgottenSource]


class ExplainResult(BaseModel):
    memory: Hit = Field(description="The memory with every source it came from.")
    project: str | None
    query: str | None
    rank: int | None = Field(description="Its place in recall(query); null when not in the top 50.")
    score_parts: dict[str, float] | None = Field(
        description="How recall scored it for the query: ranks, bm25, vector similarity, factors.")
