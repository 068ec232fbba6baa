"""Choosing the extractor the settings name."""

from __future__ import annotations

from pathlib import Path

from cairn.config import Settings
from cairn.errors import ConfigError
from cairn.extraction.base import Extractor


def load_extractor(settings: Settings, name: str | None = None) -> Extractor:
    name = name or str(settings.get("extraction", "extractor"))
    if name == "rules":
        from cairn.extraction.rules import RulesExtractor

        return RulesExtractor()
    if name == "llama":
        from cairn.extraction.llama import LlamaExtractor
        from cairn.extraction.rules import RulesExtractor

        model = settings.get("extraction", "model")
        if not model:
            raise ConfigError(
                "extractor 'llama' needs a model: run 'cairn model use PATH' or set"
                f" [extraction] model in {settings.config_path}")
        return LlamaExtractor(
            Path(str(model)).expanduser(),
            n_threads=int(settings.get("extraction", "n_threads")),
            timeout=float(settings.get("extraction", "timeout")),
            batch_size=int(settings.get("extraction", "batch_size")),
            n_ctx=int(settings.get("extraction", "n_ctx")),
            fallback=RulesExtractor(),
        )
    raise ConfigError(f"unknown extractor {name!r} (choose 'rules' or 'llama')")
