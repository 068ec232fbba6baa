"""A tiny llama-architecture GGUF for tests: loads in llama.cpp, generates, weighs ~200 kB.

The weights are random except for one deliberate feature: every token embedding
carries a constant component on dimension 0, the blocks are small perturbations, and
`output.weight[:, 0]` holds a per-token bias. The model is therefore close to a biased
unigram sampler, which makes grammar-constrained output short and predictable:

- `"` is strongly favoured, so JSON strings close after a few characters;
- control bytes (newline, tab, 0x01, ...) are favoured too, so a grammar that admits
  raw control characters inside strings visibly lets them through.

The vocabulary is GPT-2 style byte-level BPE: the 256 byte tokens, a few merges and the
ChatML control tokens. The chat template is ChatML (written so llama-cpp-python renders
it with its Jinja2 formatter, as it does for real models' templates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] | trim + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

N_EMBD = 64
N_HEAD = 4
N_LAYER = 2
N_FF = 128
N_CTX_TRAIN = 4096

_MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("e", "r"), ("Ġ", "a"), ("o", "n")]
_CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


def _bias(byte_map: dict[int, str], tokens: list[str]) -> np.ndarray:
    index = {t: i for i, t in enumerate(tokens)}
    bias = np.zeros(len(tokens), dtype=np.float32)
    bias[index[byte_map[ord('"')]]] = 4.0  # strings stay short
    for b in (0x0A, 0x09, 0x0D, 0x01, 0x1B):  # tempt the sampler with control bytes
        bias[index[byte_map[b]]] = 3.0
    for b in range(0x80, 0x100):  # mostly ASCII
        bias[index[byte_map[b]]] = -2.0
    return bias


def build_tiny_gguf(path: Path, seed: int = 0) -> Path:
    """Write the tiny model to `path` and return it."""
    import gguf

    path = Path(path)
    rng = np.random.default_rng(seed)
    byte_map = _bytes_to_unicode()
    tokens = [byte_map[b] for b in range(256)]
    tokens += [a + b for a, b in _MERGES]
    first_control = len(tokens)
    tokens += _CONTROL
    n_vocab = len(tokens)
    types = [gguf.TokenType.NORMAL] * first_control + [gguf.TokenType.CONTROL] * len(_CONTROL)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("cairn-tiny-test")
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([f"{a} {b}" for a, b in _MERGES])
    w.add_bos_token_id(first_control)  # <|endoftext|>
    w.add_eos_token_id(first_control + 2)  # <|im_end|>
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    def f16(shape: tuple[int, ...], scale: float) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float16)

    # numpy shapes are (rows, cols) = ggml's ne reversed
    embd = rng.standard_normal((n_vocab, N_EMBD)) * 0.02
    embd[:, 0] = 1.0
    w.add_tensor("token_embd.weight", embd.astype(np.float16))
    for i in range(N_LAYER):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{name}.weight", f16((N_EMBD, N_EMBD), 0.02))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", f16((N_FF, N_EMBD), 0.02))
        w.add_tensor(f"blk.{i}.ffn_up.weight", f16((N_FF, N_EMBD), 0.02))
        w.add_tensor(f"blk.{i}.ffn_down.weight", f16((N_EMBD, N_FF), 0.02))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    # after RMS norm, dimension 0 is ~sqrt(N_EMBD) for every position
    out = rng.standard_normal((n_vocab, N_EMBD)) * 0.05
    out[:, 0] = _bias(byte_map, tokens) / np.sqrt(N_EMBD)
    w.add_tensor("output.weight", out.astype(np.float16))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
