"""The Extractor protocol: episodes in, fact drafts out, with a name@version on every support."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cairn.models import EpisodeDraft, FactDraft


class Extractor(Protocol):
    name: str
    version: str

    def extract(self, episodes: Sequence[EpisodeDraft]) -> list[list[FactDraft]]:
        """One list of facts per episode, in order. Must never drop an episode silently."""
        ...


def extractor_id(extractor: Extractor) -> str:
    return f"{extractor.name}@{extractor.version}"
