"""The llama extractor against a tiny random-weight GGUF: grammar, validation, fallbacks."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest

llama_cpp = pytest.importorskip("llama_cpp")

sys.path.insert(0, str(Path(__file__).parent))
from gguf_tiny import CHAT_TEMPLATE, build_tiny_gguf

from cairn.errors import ModelMissing
from cairn.extraction.llama import (
    SAFE_CHAR_RULE,
    InvalidOutput,
    LlamaExtractor,
    fact_schema,
    parse_facts,
    render_batch,
    schema_to_gbnf,
)
from cairn.models import FACT_KINDS, EpisodeDraft, FactDraft

CONTROL = {chr(c) for c in range(0x20)} | {"\x7f"}


class MarkerFallback:
    """Stands in for the rules extractor: one recognisable fact per episode."""

    name = "marker"
    version = "1"

    def __init__(self) -> None:
        self.calls = 0

    def extract(self, episodes: Sequence[EpisodeDraft]) -> list[list[FactDraft]]:
        self.calls += 1
        return [[FactDraft(text=f"fallback {ep.locator}")] for ep in episodes]


class BrokenFallback:
    name = "broken"
    version = "1"

    def extract(self, episodes: Sequence[EpisodeDraft]) -> list[list[FactDraft]]:
        raise RuntimeError("fallback broke too")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gguf(tmp_path_factory.mktemp("model") / "tiny-test.gguf")


@pytest.fixture(scope="module")
def tiny_llm(tiny_model: Path):
    llm = llama_cpp.Llama(str(tiny_model), n_ctx=2048, n_threads=2, verbose=False, seed=0)
    yield llm
    llm.close()


def episodes(n: int, text: str = "I moved to Lisbon yesterday and I love it.") -> list[EpisodeDraft]:
    return [
        EpisodeDraft(text=f"{text} ({i})", locator=f"m{i}", speaker="Alice", role="user",
                     occurred_at="2026-05-08T13:56:00Z")
        for i in range(n)
    ]


def extractor(model: Path, **kw) -> LlamaExtractor:
    kw.setdefault("n_threads", 2)
    kw.setdefault("timeout", 30.0)
    kw.setdefault("batch_size", 4)
    kw.setdefault("n_ctx", 4096)
    kw.setdefault("fallback", MarkerFallback())
    kw.setdefault("temperature", 1.0)
    kw.setdefault("max_tokens", 600)
    return LlamaExtractor(model, **kw)


# -- the tiny model itself -------------------------------------------------------------


def test_tiny_gguf_is_small_and_loads_with_its_chat_template(tiny_model: Path, tiny_llm) -> None:
    assert tiny_model.stat().st_size < 1_000_000
    assert tiny_llm.metadata["tokenizer.chat_template"] == CHAT_TEMPLATE
    assert tiny_llm.chat_format == "chat_template.default"  # rendered from the GGUF, not guessed
    prompt = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
        template=CHAT_TEMPLATE, eos_token="<|im_end|>", bos_token="<|endoftext|>"
    )(messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]).prompt
    assert prompt == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    im_start = tiny_llm.tokenize(b"<|im_start|>", add_bos=False, special=True)
    assert len(im_start) == 1  # a control token, not its bytes


def test_grammar_constrained_output_is_strict_json(tiny_llm) -> None:
    grammar = llama_cpp.LlamaGrammar.from_string(schema_to_gbnf(fact_schema(3)))
    for seed in range(4):
        r = tiny_llm.create_chat_completion(
            [{"role": "user", "content": "hi"}], grammar=grammar, max_tokens=800,
            temperature=1.0, seed=seed)
        assert r["choices"][0]["finish_reason"] == "stop"
        data = json.loads(r["choices"][0]["message"]["content"])  # strict: no raw control chars
        assert set(data) == {"facts"} and len(data["facts"]) <= 12
        for fact in data["facts"]:
            assert fact["episode"] in range(3) and fact["kind"] in FACT_KINDS
        parse_facts(r["choices"][0]["message"]["content"], 3)


def test_converter_char_rule_admits_control_chars_and_ours_does_not(tiny_llm) -> None:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    raw = json_schema_to_gbnf(json.dumps(fact_schema(2)))
    safe = schema_to_gbnf(fact_schema(2))
    assert "char ::= [^\"\\\\]" in raw  # the known bug this module works around
    assert SAFE_CHAR_RULE in safe.splitlines()

    def outputs(gbnf: str) -> str:
        grammar = llama_cpp.LlamaGrammar.from_string(gbnf)
        return "".join(
            tiny_llm.create_chat_completion(
                [{"role": "user", "content": "hi"}], grammar=grammar, max_tokens=800,
                temperature=1.0, seed=seed)["choices"][0]["message"]["content"]
            for seed in range(4))

    # the tiny model favours control bytes: the converter's grammar lets them out
    assert CONTROL & set(outputs(raw))
    assert not CONTROL & set(outputs(safe))


# -- validation -----------------------------------------------------------------------


def fact(**kw) -> dict:
    base = {"episode": 0, "text": "Alice lives in Lisbon.", "kind": "biography",
            "subject": "Alice", "attribute": "home_city", "value": "Lisbon",
            "valid_from": "2026-05-07"}
    return base | kw


def test_parse_facts_places_facts_by_episode() -> None:
    raw = json.dumps({"facts": [fact(episode=1), fact(episode=1, text="Alice likes tea.",
                                                          kind="preference")]})
    out = parse_facts(raw, 2)
    assert out[0] == []
    assert [f.text for f in out[1]] == ["Alice lives in Lisbon.", "Alice likes tea."]
    assert out[1][0].valid_from == "2026-05-07" and out[1][0].attribute == "home_city"


@pytest.mark.parametrize("bad", [
    "not json",
    '{"facts": [',
    "[]",
    '{"facts": {}}',
    json.dumps({"facts": [fact(episode=2)]}),
    json.dumps({"facts": [fact(episode=-1)]}),
    json.dumps({"facts": [fact(episode="0")]}),
    json.dumps({"facts": [fact(episode=True)]}),
    json.dumps({"facts": [fact(kind="opinion")]}),
    json.dumps({"facts": [fact(text=7)]}),
    json.dumps({"facts": ["Alice lives in Lisbon"]}),
])
def test_parse_facts_rejects_wrong_shapes(bad: str) -> None:
    with pytest.raises(InvalidOutput):
        parse_facts(bad, 2)


def test_parse_facts_drops_empty_text_and_bad_dates() -> None:
    raw = json.dumps({"facts": [
        fact(text="  "), fact(valid_from="2026-02-31"), fact(text="Alice met Bo.", valid_from="soon"),
        fact(text="Alice met Bo."),  # duplicate
    ]})
    (facts,) = parse_facts(raw, 1)
    assert [(f.text, f.valid_from) for f in facts] == [
        ("Alice lives in Lisbon.", None), ("Alice met Bo.", None)]


def test_parse_facts_strips_control_chars_even_when_raw() -> None:
    raw = '{"facts": [{"episode": 0, "text": "Alice\n\tlikes\x01 tea", "kind": "preference",' \
          ' "subject": "Ali\u0000ce", "attribute": null, "value": null, "valid_from": null}]}'
    (facts,) = parse_facts(raw, 1)
    assert facts[0].text == "Alice likes tea" and facts[0].subject == "Ali ce"


# -- the extractor ----------------------------------------------------------------------


def test_extract_returns_one_validated_list_per_episode(tiny_model: Path) -> None:
    ex = extractor(tiny_model)
    assert ex.name == "llama" and ex.version == "1+tiny-test"
    eps = episodes(10)
    out = ex.extract(eps)
    assert len(out) == 10
    assert ex.failures == 0 and not ex.errors
    facts = [f for fs in out for f in fs]
    assert facts  # the tiny model does propose something
    for f in facts:
        assert f.text and f.kind in FACT_KINDS and not CONTROL & set(f.text)
        assert f.valid_from is None or date.fromisoformat(f.valid_from)
    assert ex.fallback.calls == 0


def test_prompt_numbers_dates_and_attributes_episodes() -> None:
    eps = episodes(2) + [EpisodeDraft(text="Ship it Friday.", locator="x", role="user",
                                      context="Work / Plans")]
    text = render_batch(eps, max_chars=2000)
    assert "[0] 2026-05-08 (Friday), Alice (user)\nI moved to Lisbon" in text
    assert "[1] " in text
    assert "[2] date unknown, the user, in: Work / Plans\nShip it Friday." in text


def test_invalid_output_is_retried_once_then_falls_back(tiny_model: Path, monkeypatch, caplog) -> None:
    ex = extractor(tiny_model, batch_size=3)
    calls = []

    def garbage(*args, **kwargs) -> str:
        calls.append(args[-1])
        return '{"facts": [{"episode": 9'

    monkeypatch.setattr(ex, "_generate", garbage)
    with caplog.at_level(logging.WARNING, logger="cairn.extraction.llama"):
        out = ex.extract(episodes(5))
    assert [fs[0].text for fs in out] == [f"fallback m{i}" for i in range(5)]
    assert len(calls) == 4  # two batches, two attempts each, the retry with another seed
    assert calls[0] != calls[1]
    assert ex.failures == 5 and ex.errors["invalid"] == 4
    assert "using the marker extractor" in caplog.text


def test_retry_can_recover(tiny_model: Path, monkeypatch) -> None:
    ex = extractor(tiny_model)
    answers = iter(["garbage", json.dumps({"facts": [fact(episode=1)]})])
    monkeypatch.setattr(ex, "_generate", lambda *a, **k: next(answers))
    out = ex.extract(episodes(2))
    assert out[0] == [] and out[1][0].text == "Alice lives in Lisbon."
    assert ex.failures == 0 and ex.errors["invalid"] == 1


def test_output_cut_by_max_tokens_falls_back(tiny_model: Path) -> None:
    ex = extractor(tiny_model, max_tokens=4)
    out = ex.extract(episodes(3))
    assert [fs[0].text for fs in out] == ["fallback m0", "fallback m1", "fallback m2"]
    assert ex.errors["invalid"] == 2 and ex.failures == 3


def test_timeout_falls_back_quickly(tiny_model: Path) -> None:
    ex = extractor(tiny_model, timeout=0.001, batch_size=2)
    out = ex.extract(episodes(5))
    assert len(out) == 5 and all(fs[0].text.startswith("fallback") for fs in out)
    assert ex.errors["timeout"] == 3 and ex.failures == 5


def test_generation_error_falls_back(tiny_model: Path, monkeypatch) -> None:
    ex = extractor(tiny_model)

    def boom(*a, **k):
        raise RuntimeError("llama_decode returned -1")

    monkeypatch.setattr(ex, "_generate", boom)
    out = ex.extract(episodes(3))
    assert len(out) == 3 and ex.errors["error"] == 1 and ex.failures == 3


def test_missing_model_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing) as err:
        LlamaExtractor(tmp_path / "nope.gguf", fallback=MarkerFallback())
    assert "cairn model use PATH" in str(err.value) and "cairn model pull NAME" in str(err.value)


def test_model_deleted_after_start_falls_back(tmp_path: Path) -> None:
    model = build_tiny_gguf(tmp_path / "gone.gguf")
    ex = extractor(model)
    model.unlink()
    out = ex.extract(episodes(2))
    assert [fs[0].text for fs in out] == ["fallback m0", "fallback m1"]
    assert ex.errors["load"] == 1


@pytest.mark.parametrize("blob", [b"GGUF" + bytes(range(256)) * 8, b"not a model", b""])
def test_corrupt_model_falls_back_and_is_not_reloaded_every_batch(tmp_path: Path, blob: bytes) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(blob)
    ex = extractor(bad, batch_size=2)
    out = ex.extract(episodes(5))
    assert len(out) == 5 and all(fs[0].text.startswith("fallback") for fs in out)
    assert ex.failures == 5 and ex.errors["load"] == 3


def test_truncated_model_file_falls_back(tmp_path: Path, tiny_model: Path) -> None:
    bad = tmp_path / "half.gguf"
    bad.write_bytes(tiny_model.read_bytes()[: tiny_model.stat().st_size // 2])
    ex = extractor(bad)
    assert len(ex.extract(episodes(2))) == 2 and ex.failures == 2


def test_broken_fallback_still_keeps_every_episode(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"junk")
    ex = extractor(bad, fallback=BrokenFallback())
    assert ex.extract(episodes(3)) == [[], [], []]
    assert ex.failures == 3 and ex.errors["fallback"] == 1


def test_batch_too_long_for_context_is_split(tiny_model: Path) -> None:
    # byte-level vocabulary: ~1 token per byte, so four 600-char episodes overflow 2048
    ex = extractor(tiny_model, n_ctx=2048, max_tokens=300, batch_size=4)
    out = ex.extract(episodes(4, text="word " * 120))
    assert len(out) == 4 and ex.failures == 0


def test_empty_input_needs_no_model(tiny_model: Path) -> None:
    ex = extractor(tiny_model)
    assert ex.extract([]) == [] and ex._llm is None


def test_rules_extractor_is_a_working_fallback(tmp_path: Path) -> None:
    rules = pytest.importorskip("cairn.extraction.rules")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"junk")
    eps = episodes(3)
    ex = extractor(bad, fallback=rules.RulesExtractor())
    assert ex.extract(eps) == rules.RulesExtractor().extract(eps)
