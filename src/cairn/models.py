"""Plain data passed between the layers: drafts coming in, hits going out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SourceKind = Literal["note", "chat", "agent_session", "screenshot", "cli", "mcp", "import"]
Role = Literal["user", "assistant", "other", "third_party"]
FactKind = Literal[
    "preference", "biography", "relationship", "event", "decision", "task", "knowledge"
]
FACT_KINDS: tuple[str, ...] = (
    "preference", "biography", "relationship", "event", "decision", "task", "knowledge",
)


@dataclass(frozen=True)
class EpisodeDraft:
    """A verbatim piece of a source, before it is stored.

    `locator` is a message id exactly as in the input, an `L12-L20` line range, or an
    `x,y,w,h` box. `context` (heading path, conversation title, front matter title) is
    searchable but not part of the text.
    """

    text: str
    locator: str
    speaker: str | None = None
    role: Role = "user"
    occurred_at: str | None = None  # ISO-8601 UTC
    context: str = ""


@dataclass(frozen=True)
class ParsedSource:
    """What a source adapter made of one file."""

    kind: SourceKind
    episodes: list[EpisodeDraft]
    skipped: list[str] = field(default_factory=list)  # one reason per dropped record


@dataclass(frozen=True)
class FactDraft:
    """A fact an extractor proposes from one episode."""

    text: str
    kind: FactKind = "knowledge"
    subject: str | None = None
    attribute: str | None = None
    value: str | None = None
    valid_from: str | None = None  # ISO-8601 date or datetime
    valid_to: str | None = None
    confidence: float = 0.5


@dataclass(frozen=True)
class SourceRef:
    kind: str
    uri: str
    locator: str | None
    speaker: str | None
    role: str | None
    occurred_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "uri": self.uri,
            "locator": self.locator,
            "speaker": self.speaker,
            "role": self.role,
            "occurred_at": self.occurred_at,
        }


@dataclass
class Hit:
    id: str
    kind: Literal["fact", "episode"]
    text: str
    score: float
    trust: float
    status: str
    valid_from: str | None
    valid_to: str | None
    recorded_at: str | None
    sources: list[SourceRef]
    explain: dict[str, float] | None = None
    project: str | None = None

    def to_dict(self, explain: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "text": self.text,
            "score": round(self.score, 6),
            "trust": round(self.trust, 4),
            "status": self.status,
            "valid_from": self.valid_from,
            "valid_to": self.valid_to,
            "recorded_at": self.recorded_at,
            "sources": [s.to_dict() for s in self.sources],
        }
        if explain and self.explain is not None:
            d["explain"] = {k: round(v, 6) for k, v in self.explain.items()}
        return d
