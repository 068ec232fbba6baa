"""Quality and speed of the `rules` extractor on a hand-labelled set of notes and chat messages.

    python bench/extract_rules.py                # the README table: one column per split, and all
    python bench/extract_rules.py --json
    python bench/extract_rules.py --errors tune  # what was missed or wrong, to improve the rules

Data: tests/data/extraction_gold.jsonl, one message or note paragraph per line:
`{"text", "speaker", "role", "occurred_at", "facts": [{"kind", "subject", "attribute", "value",
"valid_from", "keywords"}], "split"}`. An empty `facts` list means the text holds nothing worth
remembering (greetings, questions, filler). Splits: `tune` is what the rules may be improved
against (`--errors tune`); `held-out` was written with it but is only scored; `test` was
written afterwards, with new people, places and phrasings, before the rules were changed again,
and is never looked at item by item: its column is the honest figure for unseen input.

Scoring, per item: a predicted fact matches a gold fact when every gold keyword starts a word
of the predicted text (case-insensitive); each fact matches at most once (maximum bipartite
matching). Precision, recall and F1 count matched facts. On matched pairs: kind, subject (None
must match None), attribute and value (where the gold has one; "favorite" = "favourite", "_" =
" "), and valid_from (exact ISO day, month or year, where the gold has a date). "No-fact items
empty" is the share of items without gold facts for which nothing was extracted. "Self-contained"
is the share of predicted facts with no first- or second-person pronoun left in them.

Date conventions of the gold: "last week" is the Monday of that week, "two weeks ago" the day
fourteen days before, "this weekend" its Saturday, "in March" a month (the year the tense
points to), "for five years" / "since 2015" a year. Speed: the set is repeated to at least
20,000 messages and extracted in chunks of 256, as ingest does.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cairn.extraction.rules import VERSION, RulesExtractor  # noqa: E402
from cairn.models import EpisodeDraft, FactDraft  # noqa: E402

GOLD = ROOT / "tests" / "data" / "extraction_gold.jsonl"
CHUNK = 256
_PRONOUN = re.compile(r"\b(I|I'm|I've|I'd|I'll|me|my|mine|myself|we|we're|we've|our|us|you|"
                      r"your|you're)\b", re.I)


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def episode(item: dict[str, Any], n: int) -> EpisodeDraft:
    return EpisodeDraft(text=item["text"], locator=f"g{n}", speaker=item["speaker"],
                        role=item["role"], occurred_at=item["occurred_at"])


def _kw_pattern(keywords: Sequence[str]) -> list[re.Pattern[str]]:
    return [re.compile(r"(?<!\w)" + re.escape(k.lower())) for k in keywords]


def matches(pred: FactDraft, gold: dict[str, Any]) -> bool:
    text = pred.text.lower()
    return all(p.search(text) for p in _kw_pattern(gold["keywords"]))


def match(preds: Sequence[FactDraft], golds: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """A maximum one-to-one matching of predicted to gold facts (augmenting paths)."""
    edges = [[p for p, pred in enumerate(preds) if matches(pred, g)] for g in golds]
    owner: dict[int, int] = {}  # pred index -> gold index

    def augment(g: int, seen: set[int]) -> bool:
        for p in edges[g]:
            if p in seen:
                continue
            seen.add(p)
            if p not in owner or augment(owner[p], seen):
                owner[p] = g
                return True
        return False

    for g in range(len(golds)):
        augment(g, set())
    return sorted((g, p) for p, g in owner.items())


def _norm(v: str | None) -> str | None:
    if v is None:
        return None
    v = v.lower().replace("_", " ").replace("favorite", "favourite")
    return re.sub(r"[\s.,;:!'\"]+", " ", v).strip() or None


def _date(v: str | None) -> str | None:
    return v[:10] if v and "T" in v else v


class Score:
    def __init__(self) -> None:
        self.c: dict[str, int] = {k: 0 for k in (
            "items", "gold", "pred", "tp", "kind", "subject", "attr_n", "attr", "value_n",
            "value", "date_n", "date", "empty_n", "empty", "clean")}

    def add(self, preds: Sequence[FactDraft], golds: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
        c = self.c
        c["items"] += 1
        c["gold"] += len(golds)
        c["pred"] += len(preds)
        c["clean"] += sum(1 for p in preds if not _PRONOUN.search(p.text))
        if not golds:
            c["empty_n"] += 1
            c["empty"] += not preds
        pairs = match(preds, golds)
        for g, p in pairs:
            gold, pred = golds[g], preds[p]
            c["tp"] += 1
            c["kind"] += pred.kind == gold["kind"]
            c["subject"] += _norm(pred.subject) == _norm(gold["subject"])
            if gold["attribute"]:
                c["attr_n"] += 1
                c["attr"] += _norm(pred.attribute) == _norm(gold["attribute"])
            if gold["value"]:
                c["value_n"] += 1
                c["value"] += _norm(pred.value) == _norm(gold["value"])
            if gold["valid_from"]:
                c["date_n"] += 1
                c["date"] += _date(pred.valid_from) == gold["valid_from"]
        return pairs

    def result(self) -> dict[str, Any]:
        c = self.c
        p = c["tp"] / c["pred"] if c["pred"] else 0.0
        r = c["tp"] / c["gold"] if c["gold"] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0

        def share(a: str, b: str) -> float | None:
            return round(c[a] / c[b], 3) if c[b] else None

        return {
            "items": c["items"], "gold_facts": c["gold"], "predicted_facts": c["pred"],
            "matched": c["tp"], "precision": round(p, 3), "recall": round(r, 3), "f1": round(f, 3),
            "kind_accuracy": share("kind", "tp"), "subject_accuracy": share("subject", "tp"),
            "attribute_accuracy": share("attr", "attr_n"), "attribute_pairs": c["attr_n"],
            "value_accuracy": share("value", "value_n"),
            "valid_from_accuracy": share("date", "date_n"), "dated_pairs": c["date_n"],
            "no_fact_items_empty": share("empty", "empty_n"), "no_fact_items": c["empty_n"],
            "self_contained": share("clean", "pred"),
        }


def throughput(episodes: Sequence[EpisodeDraft], at_least: int) -> dict[str, Any]:
    reps = -(-at_least // len(episodes))
    work = list(episodes) * reps
    ex = RulesExtractor()
    ex.extract(work[:CHUNK])  # warm the regex caches
    t0 = time.perf_counter()
    facts = 0
    for i in range(0, len(work), CHUNK):
        facts += sum(len(x) for x in ex.extract(work[i:i + CHUNK]))
    dt = time.perf_counter() - t0
    return {"messages": len(work), "seconds": round(dt, 3),
            "messages_per_s": round(len(work) / dt), "facts": facts}


def _show_errors(name: str, items: Sequence[dict[str, Any]], preds: Sequence[list[FactDraft]],
                 offset: int) -> None:
    out = sys.stderr
    for n, (item, pl) in enumerate(zip(items, preds, strict=True)):
        golds = item["facts"]
        pairs = match(pl, golds)
        got_g = {g for g, _ in pairs}
        got_p = {p for _, p in pairs}
        lines = []
        for g, gold in enumerate(golds):
            if g not in got_g:
                lines.append(f"  MISS {gold['kind']:<12} {gold['keywords']} ({gold['subject']},"
                             f" {gold['attribute']}, {gold['valid_from']})")
        for p, pred in enumerate(pl):
            if p not in got_p:
                lines.append(f"  EXTRA {pred.kind:<11} {pred.text!r}")
        for g, p in pairs:
            gold, pred = golds[g], pl[p]
            bad = []
            if pred.kind != gold["kind"]:
                bad.append(f"kind {pred.kind}≠{gold['kind']}")
            if _norm(pred.subject) != _norm(gold["subject"]):
                bad.append(f"subject {pred.subject!r}≠{gold['subject']!r}")
            if gold["attribute"] and _norm(pred.attribute) != _norm(gold["attribute"]):
                bad.append(f"attribute {pred.attribute!r}≠{gold['attribute']!r}")
            if gold["value"] and _norm(pred.value) != _norm(gold["value"]):
                bad.append(f"value {pred.value!r}≠{gold['value']!r}")
            if gold["valid_from"] and _date(pred.valid_from) != gold["valid_from"]:
                bad.append(f"date {pred.valid_from}≠{gold['valid_from']}")
            if bad:
                lines.append(f"  WRONG {pred.text!r}: " + "; ".join(bad))
        if lines:
            out.write(f"[{name} #{offset + n + 1}] {item['speaker']}/{item['role']}"
                      f" {item['occurred_at']}: {item['text']!r}\n" + "\n".join(lines) + "\n")


ROWS = [
    ("items", "items"), ("gold facts", "gold_facts"), ("predicted facts", "predicted_facts"),
    ("precision", "precision"), ("recall", "recall"), ("F1", "f1"),
    ("kind accuracy", "kind_accuracy"), ("subject accuracy", "subject_accuracy"),
    ("attribute accuracy", "attribute_accuracy"), ("value accuracy", "value_accuracy"),
    ("valid_from accuracy", "valid_from_accuracy"),
    ("no-fact items empty", "no_fact_items_empty"), ("self-contained facts", "self_contained"),
]


def table(results: dict[str, dict[str, Any]], speed: dict[str, Any]) -> str:
    cols = list(results)
    head = "| metric | " + " | ".join(cols) + " |"
    lines = [head, "|---|" + "---:|" * len(cols)]
    for label, key in ROWS:
        cells = []
        for col in cols:
            v = results[col][key]
            cells.append("–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"rules@{VERSION}: {speed['messages_per_s']:,} messages/s"
                 f" ({speed['messages']:,} messages in {speed['seconds']} s, one thread)")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gold", type=Path, default=GOLD)
    ap.add_argument("--messages", type=int, default=20_000,
                    help="repeat the set to at least this many messages for the speed figure")
    ap.add_argument("--errors", choices=["tune", "held-out", "test", "all"],
                    help="print misses, extras and wrong labels to stderr")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args()

    items = load(args.gold)
    episodes = [episode(it, n) for n, it in enumerate(items)]
    preds = RulesExtractor().extract(episodes)
    splits = list(dict.fromkeys(it.get("split", "all") for it in items))
    results = {}
    for name in [*splits, "all"]:
        sc = Score()
        for it, pl in zip(items, preds, strict=True):
            if name == "all" or it.get("split", "all") == name:
                sc.add(pl, it["facts"])
        results[name] = sc.result()
    if args.errors:
        for n, (it, pl) in enumerate(zip(items, preds, strict=True)):
            if args.errors == "all" or it.get("split") == args.errors:
                _show_errors(args.errors, [it], [pl], n)
    speed = throughput(episodes, args.messages)
    if args.json:
        print(json.dumps({"extractor": f"rules@{VERSION}", "gold": str(args.gold),
                          "results": results, "throughput": speed}, indent=2))
    else:
        print(table(results, speed))


if __name__ == "__main__":
    main()
