"""cairn reextract: facts of older extractors replaced, the user's own kept, failures counted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cairn.config import load_settings
from cairn.extraction.rules import RulesExtractor
from cairn.models import EpisodeDraft, FactDraft
from cairn.service import Memory
from conftest import cli_json, run_cli, write_chat

MESSAGES = [
    {"id": "m1", "speaker": "Dana", "role": "user", "time": "2024-03-01T10:00:00Z",
     "text": "I live in Porto now."},
    {"id": "m2", "speaker": "Dana", "role": "user", "time": "2025-09-01T10:00:00Z",
     "text": "I moved to Berlin last month and I work at Zalando."},
    {"id": "m3", "speaker": "Eli", "role": "user", "time": "2025-09-01T10:01:00Z",
     "text": "Nice! We decided to adopt a cat."},
    {"id": "m4", "speaker": "Dana", "role": "user", "time": "2025-09-01T10:02:00Z",
     "text": "haha"},
]


class OldRules(RulesExtractor):
    """An 'older version': the same facts, worded worse, labelled without attributes."""

    version = "0"

    def extract(self, episodes: Sequence[EpisodeDraft]) -> list[list[FactDraft]]:
        return [[FactDraft(text=f"{ep.speaker} said: {ep.text}", kind="knowledge",
                           subject=ep.speaker)] for ep in episodes]


class Broken:
    name = "broken"
    version = "1"

    def extract(self, episodes: Sequence[EpisodeDraft]) -> list[list[FactDraft]]:
        raise RuntimeError("extractor exploded")


def facts(m: Memory) -> list[dict[str, Any]]:
    cur = m.store.conn.execute(
        "select f.id, f.text, f.status, f.origin, f.attribute, f.value, group_concat(s.extractor)"
        " from facts f left join supports s on s.fact_id = f.id group by f.id order by f.id")
    cols = ["id", "text", "status", "origin", "attribute", "value", "extractors"]
    return [dict(zip(cols, row, strict=True)) for row in cur]


@pytest.fixture
def old_store(home: Path, tmp_path: Path) -> Path:
    chat = write_chat(tmp_path / "dana.chat.jsonl", MESSAGES)
    with Memory(load_settings(), extractor=OldRules()) as m:
        assert m.ingest([chat]).to_dict()["episodes_added"] == 4
        m.remember("My cat is called Miso")
    return chat


def test_reextract_replaces_older_facts_and_keeps_typed_ones(old_store: Path) -> None:
    with Memory(load_settings()) as m:
        before = facts(m)
        assert {f["extractors"] for f in before} == {"rules@0", "user@1"}
        rep = m.reextract()
        assert (rep["extractor"], rep["episodes"], rep["episodes_done"]) == ("rules@2", 4, 4)
        assert rep["facts_retracted"] == 4 and rep["facts_added"] >= 3
        after = facts(m)
        typed = [f for f in after if f["origin"] == "typed"]
        assert [f["text"] for f in typed] == ["My cat is called Miso"]
        assert typed[0]["extractors"] == "user@1"
        extracted = [f for f in after if f["origin"] == "extracted"]
        assert all(f["extractors"] == "rules@2" for f in extracted)
        assert not any("said:" in f["text"] for f in after)
        residence = [(f["value"], f["status"]) for f in extracted if f["attribute"] == "residence"]
        assert residence == [("Porto", "superseded"), ("Berlin", "active")]
        stats = m.stats()
        assert stats["episodes_by_extractor"] == {"rules@2": 4, "user@1": 1}

        again = m.reextract()
        assert (again["episodes_done"], again["episodes_current"]) == (0, 4)
        ids = [f["id"] for f in facts(m)]
        forced = m.reextract(force=True)
        assert forced["episodes_done"] == 4 and forced["facts_added"] == 0
        assert [f["id"] for f in facts(m)] == ids  # same words: same facts, same ids


def test_dry_run_changes_nothing(old_store: Path) -> None:
    with Memory(load_settings()) as m:
        before = facts(m)
        rep = m.reextract(dry_run=True)
        assert rep["dry_run"] and rep["episodes"] == 4 and rep["episodes_done"] == 0
        assert rep["by_extractor"] == {"rules@0": 4}
        assert facts(m) == before


def test_a_failing_extractor_keeps_episodes_and_old_facts_and_counts(old_store: Path) -> None:
    with Memory(load_settings()) as m:
        before = facts(m)
        from cairn.ingest.reextract import reextract

        rep = reextract(m.store, m.embedder, Broken()).to_dict()
        assert rep["episodes_failed"] == 4 and rep["facts_retracted"] == 0
        assert facts(m) == before
        assert m.stats()["extraction_errors"] == 4
        err = m.store.conn.execute("select extraction_error from episodes where locator = 'm1'"
                                   ).fetchone()[0]
        assert "extractor exploded" in err
        assert m.reextract()["episodes_done"] == 4  # retried, and done, by a working one


def test_superseded_fact_comes_back_when_its_replacement_is_retracted(home: Path,
                                                                       tmp_path: Path) -> None:
    chat = write_chat(tmp_path / "c.chat.jsonl", [
        MESSAGES[0],
        {"id": "x", "speaker": "Dana", "role": "user", "time": "2025-01-01T10:00:00Z",
         "text": "Haha I would never live in Oslo."},
    ])

    class Wrong(RulesExtractor):
        version = "0"

        def extract(self, episodes: Sequence[EpisodeDraft]) -> list[list[FactDraft]]:
            out = super().extract(episodes)
            out[-1] = [FactDraft(text="Dana lives in Oslo.", kind="biography", subject="Dana",
                                 attribute="residence", value="Oslo")]
            return out

    with Memory(load_settings(), extractor=Wrong()) as m:
        m.ingest([chat])
        assert [(f["value"], f["status"]) for f in facts(m) if f["attribute"]] == [
            ("Porto", "superseded"), ("Oslo", "active")]
        rep = m.reextract(extractor="rules")
        assert rep["facts_retracted"] == 1 and rep["facts_restored"] == 1
        assert [(f["value"], f["status"]) for f in facts(m) if f["attribute"]] == [
            ("Porto", "active")]


def test_cli_reextract_json_and_text(old_store: Path, home: Path) -> None:
    dry = run_cli("reextract", "--dry-run", home=home, check=True)
    assert "4 of 4 episodes would be extracted again with rules@2" in dry.stdout
    out = cli_json("reextract", home=home)
    assert out["episodes_done"] == 4 and out["extractor"] == "rules@2"
    text = run_cli("reextract", home=home, check=True)
    assert text.stdout.startswith("0 episodes extracted again with rules@2 (4 already current")
    bad = run_cli("reextract", "--extractor", "gpt", home=home)
    assert bad.returncode == 2 and bad.stderr.startswith("Error: unknown extractor 'gpt'")
    assert "Traceback" not in bad.stderr
    nomodel = run_cli("reextract", "--extractor", "llama", home=home)
    assert nomodel.returncode == 2 and "cairn model use PATH" in nomodel.stderr
    stats = json.loads(run_cli("stats", "--json", home=home, check=True).stdout)
    assert stats["episodes_by_extractor"] == {"rules@2": 4, "user@1": 1}
