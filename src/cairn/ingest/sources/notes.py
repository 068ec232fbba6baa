"""Markdown and plain-text notes (Obsidian vaults included): sections and paragraphs become
episodes with `L<start>-L<end>` locators; front matter and the heading path are context."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from cairn.errors import BadInput
from cairn.ingest.normalise import clean_text, decode_text, to_utc_iso
from cairn.models import EpisodeDraft, ParsedSource

SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".txt", ".text", ".org", ".rst"})
MAX_EPISODE_CHARS = 1200

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_DATE_NAME = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_WIKI = re.compile(r"\[\[([^\]|#]+)(?:#[^\]|]*)?(?:\|([^\]]+))?\]\]")


def matches(path: Path, head: bytes) -> bool:
    return path.suffix.lower() in SUFFIXES


def _front_matter(lines: list[str]) -> tuple[dict[str, str], int]:
    """Simple `key: value` YAML front matter; returns the fields and the first body line index."""
    if not lines or lines[0].strip() != "---":
        return {}, 0
    for i in range(1, min(len(lines), 200)):
        if lines[i].strip() in ("---", "..."):
            fields: dict[str, str] = {}
            key = None
            for raw in lines[1:i]:
                m = re.match(r"^([A-Za-z_][\w-]*)\s*:\s*(.*)$", raw)
                if m:
                    key = m.group(1).lower()
                    fields[key] = m.group(2).strip().strip("'\"")
                elif key and raw.strip().startswith("- "):
                    sep = ", " if fields[key] else ""
                    fields[key] += sep + raw.strip()[2:].strip().strip("'\"")
            return fields, i + 1
    return {}, 0


def _note_time(path: Path, fields: dict[str, str], mtime: float | None) -> str | None:
    for key in ("date", "created", "created_at"):
        if key in fields and (t := to_utc_iso(fields[key][:25])):
            return t
        if key in fields and re.match(r"^\d{4}-\d{2}-\d{2}$", fields[key][:10]):
            return fields[key][:10] + "T00:00:00Z"
    if m := _DATE_NAME.search(path.stem):  # daily notes: 2026-05-08.md
        try:
            return datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            pass
    return to_utc_iso(mtime) if mtime is not None else None


def parse(path: Path, data: bytes, *, mtime: float | None = None) -> ParsedSource:
    text = decode_text(data, str(path))
    if not text.strip():
        raise BadInput("empty file")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    fields, start = _front_matter(lines)
    occurred = _note_time(path, fields, mtime)
    title = fields.get("title") or path.stem
    base_ctx = title + (f" [tags: {fields['tags']}]" if fields.get("tags") else "")
    headings: list[str] = []
    episodes: list[EpisodeDraft] = []
    para: list[tuple[int, str]] = []
    in_fence = False

    def flush() -> None:
        if not para:
            return
        _emit(para, headings, base_ctx, occurred, episodes)
        para.clear()

    for idx in range(start, len(lines)):
        line = lines[idx]
        lineno = idx + 1
        if _FENCE.match(line):
            in_fence = not in_fence
            para.append((lineno, line))
            continue
        if in_fence:
            para.append((lineno, line))
            continue
        if m := _HEADING.match(line):
            flush()
            level = len(m.group(1))
            headings[:] = [*headings[: level - 1], m.group(2)]
            continue
        if not line.strip():
            flush()
            continue
        para.append((lineno, line))
    flush()
    return ParsedSource(kind="note", episodes=episodes)


def _emit(para: list[tuple[int, str]], headings: list[str], base_ctx: str, occurred: str | None,
          out: list[EpisodeDraft]) -> None:
    ctx = " > ".join([base_ctx, *[h for h in headings if h]])
    # Long paragraphs are cut at line boundaries so each episode stays a readable unit.
    chunk: list[tuple[int, str]] = []
    size = 0
    for item in para:
        if chunk and size + len(item[1]) > MAX_EPISODE_CHARS:
            _add(chunk, ctx, occurred, out)
            chunk, size = [], 0
        chunk.append(item)
        size += len(item[1]) + 1
    _add(chunk, ctx, occurred, out)


def _add(chunk: list[tuple[int, str]], ctx: str, occurred: str | None,
         out: list[EpisodeDraft]) -> None:
    body = clean_text("\n".join(t for _, t in chunk))
    if not body or not re.search(r"\w", body):
        return
    if len(body) > 4 * MAX_EPISODE_CHARS:  # one enormous line (minified data): keep its start
        body = body[: 4 * MAX_EPISODE_CHARS]
    first, last = chunk[0][0], chunk[-1][0]
    out.append(EpisodeDraft(text=body, locator=f"L{first}-L{last}", speaker=None, role="user",
                            occurred_at=occurred, context=ctx))


def plain_links(text: str) -> str:
    """[[Page|alias]] → alias, [[Page]] → Page (for extraction, not for storage)."""
    return _WIKI.sub(lambda m: m.group(2) or m.group(1), text)
