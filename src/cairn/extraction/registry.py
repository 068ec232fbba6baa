"""Choosing the extractor the settings name, with its [extraction] settings checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cairn.config import Settings
from cairn.errors import ConfigError
from cairn.extraction.base import Extractor

EXTRACTORS = ("rules", "llama")


def _number(settings: Settings, key: str, kind: type, low: float, high: float,
            what: str) -> Any:
    raw = settings.get("extraction", key)
    ok = isinstance(raw, int | float) and not isinstance(raw, bool)
    if ok and kind is int and isinstance(raw, float) and not raw.is_integer():
        ok = False
    if not ok or not low <= raw <= high:
        raise ConfigError(f"{settings.config_path}: [extraction] {key} = {raw!r}: expected"
                          f" {what}; fix it with 'cairn config set extraction.{key} VALUE'")
    return kind(raw)


def llama_settings(settings: Settings) -> dict[str, Any]:
    """n_threads (0: all cores), timeout (seconds per call), batch_size, n_ctx, checked."""
    return {
        "n_threads": _number(settings, "n_threads", int, 0, 512,
                             "a whole number of threads, 0 for all cores"),
        "timeout": _number(settings, "timeout", float, 0.001, 86_400,
                           "seconds per model call, more than 0"),
        "batch_size": _number(settings, "batch_size", int, 1, 64,
                              "messages per model call, 1 to 64"),
        "n_ctx": _number(settings, "n_ctx", int, 256, 1_048_576,
                         "a context size in tokens, at least 256"),
    }


def model_path(settings: Settings) -> Path | None:
    raw = settings.get("extraction", "model")
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        raise ConfigError(f"{settings.config_path}: [extraction] model must be a path, not {raw!r}")
    return Path(raw).expanduser()


def load_extractor(settings: Settings, name: str | None = None) -> Extractor:
    name = name or str(settings.get("extraction", "extractor"))
    if name == "rules":
        from cairn.extraction.rules import RulesExtractor

        return RulesExtractor()
    if name == "llama":
        from cairn.extraction.llama import LlamaExtractor
        from cairn.extraction.rules import RulesExtractor

        model = model_path(settings)
        if model is None:
            raise ConfigError(
                "extractor 'llama' needs a model: run 'cairn model use PATH' or 'cairn model"
                f" pull NAME', or set [extraction] model in {settings.config_path}")
        return LlamaExtractor(model, **llama_settings(settings), fallback=RulesExtractor())
    raise ConfigError(f"unknown extractor {name!r} (choose {' or '.join(map(repr, EXTRACTORS))})")
