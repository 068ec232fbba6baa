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
from cairn.errors import ModelMissing  # noqa: E402
from cairn.extraction.llama import (  # noqa: E402
    SAFE_CHAR_RULE,
    InvalidOutput,
    LlamaExtractor,
    fact_schema,
    parse_facts,
    render_batch,
    schema_to_gbnf,
)
from cairn.models import FACT_KINDS, EpisodeDraft, FactDraft  # noqa: E402
from gguf_tiny import CHAT_TEMPLATE, build_tiny_gguf  # noqa: E402

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
    eps = [*episodes(2), EpisodeDraft(text="Ship it Friday.", locator="x", role="user",
                                      context="Work / Plans")]
    text = render_batch(eps, max_chars=2000)
    assert "[0] 2026-05-08 (Friday), Alice (user)\nI moved to Lisbon" in text
    assert "[1] " in text
    assert "[2] date unknown, the user, in: Work / Plans\nShip it Friday." in text


class Scripted(LlamaExtractor):
    """The real model loads and the prompt is built; the answers are scripted."""

    def __init__(self, model: Path, answers: list[str], **kw) -> None:
        super().__init__(model, **kw)
        self.answers = iter(answers)
        self.seeds: list[int] = []

    def _generate(self, llm, messages, grammar, max_tokens, temperature, seed) -> str:
        self.seeds.append(seed)
        return next(self.answers)


class Raising(LlamaExtractor):
    """A model call that raises (llama_decode failing, out of memory, a bug)."""

    def _generate(self, *args, **kwargs) -> str:
        raise RuntimeError("llama_decode returned -1")


def test_garbage_from_the_real_model_is_retried_once_then_falls_back(tiny_model: Path,
                                                                    caplog) -> None:
    # No grammar: the random-weight model answers random bytes, never valid JSON.
    ex = extractor(tiny_model, batch_size=3, constrained=False, max_tokens=64)
    with caplog.at_level(logging.WARNING, logger="cairn.extraction.llama"):
        out = ex.extract(episodes(5))
    assert [fs[0].text for fs in out] == [f"fallback m{i}" for i in range(5)]
    assert ex.failures == 5 and ex.errors["invalid"] == 4  # two batches, two attempts each
    assert "using the marker extractor" in caplog.text
    assert [o.extractor for o in ex.last_outcomes] == ["marker@1"] * 5
    assert all(o.error and o.error.startswith("llama invalid") for o in ex.last_outcomes)


def test_retry_uses_another_seed_and_can_recover(tiny_model: Path) -> None:
    ex = Scripted(tiny_model, ["garbage", json.dumps({"facts": [fact(episode=1)]})],
                  fallback=MarkerFallback(), n_threads=2)
    out = ex.extract(episodes(2))
    assert out[0] == [] and out[1][0].text == "Alice lives in Lisbon."
    assert ex.failures == 0 and ex.errors["invalid"] == 1
    assert ex.seeds == [0, 1]
    assert [o.extractor for o in ex.last_outcomes] == ["llama@1+tiny-test"] * 2


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


def test_generation_error_falls_back(tiny_model: Path) -> None:
    ex = Raising(tiny_model, fallback=MarkerFallback(), n_threads=2)
    out = ex.extract(episodes(3))
    assert len(out) == 3 and ex.errors["error"] == 1 and ex.failures == 3
    assert all("llama_decode returned -1" in (o.error or "") for o in ex.last_outcomes)


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


# -- through the pipeline: a failed extraction never drops an episode ------------------


def chat_file(tmp_path: Path, n: int) -> Path:
    from conftest import write_chat

    return write_chat(tmp_path / "faults.chat.jsonl", [
        {"id": f"m{i}", "speaker": "Alice", "role": "user", "time": "2026-05-08T13:56:00Z",
         "text": f"I moved to Lisbon yesterday and I work at Siemens now ({i})."}
        for i in range(n)])


@pytest.mark.parametrize("fault", ["garbage", "timeout", "raises"])
def test_faulty_model_loses_no_episode_and_counts_errors(home: Path, tmp_path: Path,
                                                         tiny_model: Path, fault: str) -> None:
    from cairn.config import load_settings
    from cairn.extraction.rules import RulesExtractor
    from cairn.service import Memory

    kw = {"n_threads": 2, "batch_size": 3, "fallback": RulesExtractor()}
    ex = {"garbage": lambda: LlamaExtractor(tiny_model, constrained=False, max_tokens=64, **kw),
          "timeout": lambda: LlamaExtractor(tiny_model, timeout=0.001, **kw),
          "raises": lambda: Raising(tiny_model, **kw)}[fault]()
    with Memory(load_settings(), extractor=ex) as m:
        rep = m.ingest([chat_file(tmp_path, 7)]).to_dict()
        assert rep["episodes_added"] == 7 and rep["files_error"] == 0
        stats = m.stats()
        assert stats["episodes"] == 7 and stats["extraction_errors"] == 7
        assert stats["episodes_by_extractor"] == {"rules@2": 7}  # the fallback made the facts
        rows = m.store.conn.execute("select distinct extractor from supports").fetchall()
        assert rows == [("rules@2",)] and stats["facts"] > 0


def test_cli_ingest_with_the_llama_extractor_and_a_tiny_timeout(home: Path, tmp_path: Path,
                                                               tiny_model: Path) -> None:
    from conftest import cli_json, run_cli

    run_cli("model", "use", str(tiny_model), home=home, check=True)
    run_cli("config", "set", "extraction.timeout", "0.001", home=home, check=True)
    out = cli_json("ingest", str(chat_file(tmp_path, 4)), home=home)
    assert out["episodes_added"] == 4
    stats = cli_json("stats", home=home)
    assert stats["episodes"] == 4 and stats["extraction_errors"] == 4
    run_cli("config", "set", "extraction.timeout", "60", home=home, check=True)
    again = cli_json("reextract", home=home)  # now the model answers: llama makes the facts
    assert again["episodes_done"] == 4 and again["episodes_failed"] == 0
    assert again["extractor"] == "llama@1+tiny-test"
    assert cli_json("stats", home=home)["episodes_by_extractor"] == {"llama@1+tiny-test": 4}
