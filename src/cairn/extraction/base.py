"""The Extractor protocol: episodes in, fact drafts out, with a name@version on every support.

An extractor may also say, per episode of its last call, which extractor really made the facts
and why the preferred path failed (`last_outcomes`): the llama extractor falls back to the rules
extractor for a batch it cannot answer, and those supports must say `rules@2`, not `llama@…`, so
`cairn reextract --extractor llama` knows to try them again, and `cairn stats` counts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cairn.models import EpisodeDraft, FactDraft


class Extractor(Protocol):
    name: str
    version: str

    def extract(self, episodes: Sequence[EpisodeDraft]) -> list[list[FactDraft]]:
        """One list of facts per episode, in order. Must never drop an episode silently."""
        ...


@dataclass(frozen=True)
class Outcome:
    """How one episode's facts were made."""

    extractor: str  # name@version of what made the facts (the fallback's, after a failure)
    error: str | None = None  # why the extractor asked for failed; None when it did not


def extractor_id(extractor: Any) -> str:
    return f"{extractor.name}@{extractor.version}"


def outcomes_of(extractor: Any, n: int) -> list[Outcome]:
    """The per-episode outcomes of the extractor's last call, or 'all fine' when it keeps none."""
    got = getattr(extractor, "last_outcomes", None)
    if isinstance(got, list) and len(got) == n and all(isinstance(o, Outcome) for o in got):
        return list(got)
    return [Outcome(extractor_id(extractor))] * n
