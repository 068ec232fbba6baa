"""cairn chat JSONL: one message per line,
`{"conversation", "id", "speaker", "role", "time", "text", ["session"]}`; files end `.chat.jsonl`."""

from __future__ import annotations

import json
from pathlib import Path

from cairn.errors import BadInput
from cairn.ingest.normalise import clean_text, decode_text, to_utc_iso
from cairn.models import EpisodeDraft, ParsedSource, Role

ROLES: frozenset[str] = frozenset({"user", "assistant", "other", "third_party"})


def matches(path: Path, head: bytes) -> bool:
    return path.name.lower().endswith(".chat.jsonl")


def parse(path: Path, data: bytes, **_: object) -> ParsedSource:
    text = decode_text(data, str(path))
    if not text.strip():
        raise BadInput("empty file")
    episodes: list[EpisodeDraft] = []
    skipped: list[str] = []
    seen: set[str] = set()
    lines = text.split("\n")
    bad = 0
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            msg = json.loads(raw)
        except json.JSONDecodeError as e:
            bad += 1
            last = n == len(lines) or all(not x.strip() for x in lines[n:])
            skipped.append(f"line {n}: {'truncated' if last else 'not valid'} JSON ({e.msg})")
            continue
        if not isinstance(msg, dict):
            bad += 1
            skipped.append(f"line {n}: not a JSON object")
            continue
        body = msg.get("text")
        if not isinstance(body, str):
            bad += 1
            skipped.append(f"line {n}: no 'text' string")
            continue
        body = clean_text(body)
        if not body:
            continue
        mid = msg.get("id")
        locator = str(mid) if mid is not None and str(mid) != "" else f"L{n}"
        if locator in seen:
            skipped.append(f"line {n}: duplicate id {locator!r}")
            continue
        seen.add(locator)
        role = str(msg.get("role") or "user").lower()
        role_v: Role = role if role in ROLES else "other"  # type: ignore[assignment]
        speaker = msg.get("speaker")
        ctx_parts = [str(msg[k]) for k in ("conversation", "session") if msg.get(k)]
        episodes.append(EpisodeDraft(
            text=body, locator=locator,
            speaker=str(speaker) if speaker not in (None, "") else None,
            role=role_v, occurred_at=to_utc_iso(msg.get("time")),
            context=" / ".join(ctx_parts),
        ))
    if not episodes and bad:
        raise BadInput(f"no readable messages ({skipped[0]})")
    return ParsedSource(kind="chat", episodes=episodes, skipped=skipped)
