"""Chat exports from ChatGPT and Claude (`conversations.json`): one episode per message.

ChatGPT keeps each conversation as a `mapping` tree of nodes (every branch, edit and
regeneration is a node); Claude keeps a flat `chat_messages` list. Only what the user typed
and the assistant's visible prose are kept: system prompts, tool calls and tool output,
hidden context (custom instructions, memory) and empty messages are left out. A truncated
export keeps the conversations that were written in full.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cairn.errors import BadInput
from cairn.ingest.normalise import clean_text, decode_text, to_utc_iso
from cairn.models import EpisodeDraft, ParsedSource, Role

NAMES = frozenset({"conversations.json"})
# ChatGPT content types that carry prose; code, execution_output, tether_*, thoughts,
# user_editable_context (custom instructions) and model_editable_context (memory) do not.
_CHATGPT_TEXT_TYPES = frozenset({"text", "multimodal_text"})
_CHATGPT_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant"}
_CLAUDE_ROLES: dict[str, Role] = {"human": "user", "user": "user", "assistant": "assistant"}

_HEAD_CHATGPT = re.compile(rb'"(mapping|current_node)"\s*:')
_HEAD_CLAUDE = re.compile(rb'"chat_messages"\s*:|"sender"\s*:\s*"(human|assistant)"')


def matches(path: Path, head: bytes) -> bool:
    if path.name.lower() in NAMES:
        return True
    if path.suffix.lower() != ".json":
        return False
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start not in (b"[", b"{"):
        return False
    return bool(_HEAD_CHATGPT.search(head) or _HEAD_CLAUDE.search(head))


def parse(path: Path, data: bytes, *, mtime: float | None = None) -> ParsedSource:
    text = decode_text(data, str(path))
    if not text.strip():
        raise BadInput("empty file")
    skipped: list[str] = []
    conversations = list(_conversations(text, skipped))
    if not conversations:
        raise BadInput("; ".join(skipped[:2]) if skipped else "no conversations found")
    episodes: list[EpisodeDraft] = []
    seen: set[str] = set()
    recognised = 0
    for n, conv in conversations:
        label = _label(n, conv)
        if isinstance(conv.get("mapping"), dict):
            recognised += 1
            drafts = _chatgpt(conv, label, skipped)
        elif isinstance(conv.get("chat_messages"), list):
            recognised += 1
            drafts = _claude(conv, label, skipped)
        else:
            skipped.append(f"{label}: neither a ChatGPT 'mapping' nor a Claude 'chat_messages'")
            continue
        for d in drafts:
            if d.locator in seen:
                skipped.append(f"{label}: duplicate message id {d.locator!r}")
                continue
            seen.add(d.locator)
            episodes.append(d)
    if not recognised:
        raise BadInput("not a ChatGPT or Claude export (no 'mapping' or 'chat_messages')")
    return ParsedSource(kind="chat", episodes=episodes, skipped=skipped)


# ------------------------------------------------------------------ reading the JSON


def _conversations(text: str, skipped: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The conversation objects, one at a time; a truncated list yields its complete items."""
    # Offsets into `text`, not stripped copies: an export can be hundreds of megabytes.
    s = text
    start = _skip_ws(s, 0)
    if s.startswith("{", start):
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as e:
            skipped.append(f"not valid JSON ({e.msg} at line {e.lineno})")
            return
        if isinstance(obj, dict) and isinstance(obj.get("conversations"), list):
            items: list[Any] = obj["conversations"]
        else:
            items = [obj]
        for n, item in enumerate(items, start=1):
            if isinstance(item, dict):
                yield n, item
            else:
                skipped.append(f"conversation {n}: not a JSON object")
        return
    if not s.startswith("[", start):
        skipped.append("not a JSON list of conversations")
        return
    # Trigger: a 300 MB export cut short by a failed download or a full disk.
    # Why: json.loads would lose every conversation for one bad byte at the end.
    # Outcome: decode item by item and keep everything before the damage.
    dec = json.JSONDecoder()
    i, n, end = start + 1, 0, len(s)
    while True:
        i = _skip_ws(s, i)
        if i >= end:
            skipped.append(f"truncated JSON after conversation {n} (no closing ']')")
            return
        if s[i] == "]":
            return
        n += 1
        try:
            item, i = dec.raw_decode(s, i)
        except json.JSONDecodeError as e:
            # A file cut short no longer ends with the list's ']'.
            last = len(s) - 1
            while last > 0 and s[last] in " \t\r\n":
                last -= 1
            what = "invalid" if s[last] == "]" else "truncated"
            skipped.append(f"conversation {n} onwards: {what} JSON ({e.msg} at line {e.lineno})")
            return
        except RecursionError:
            skipped.append(f"conversation {n} onwards: JSON nested too deeply")
            return
        if isinstance(item, dict):
            yield n, item
        else:
            skipped.append(f"conversation {n}: not a JSON object")
        i = _skip_ws(s, i)
        if i < end and s[i] == ",":
            i += 1
        elif i < end and s[i] != "]":
            skipped.append(f"conversation {n + 1} onwards: invalid JSON (expected ',' or ']')")
            return


def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t\r\n":
        i += 1
    return i


def _label(n: int, conv: dict[str, Any]) -> str:
    title = conv.get("title") if "mapping" in conv else conv.get("name")
    if isinstance(title, str) and title.strip():
        return f"conversation {n} ({title.strip()[:40]!r})"
    return f"conversation {n}"


def _title(conv: dict[str, Any], key: str) -> str:
    value = conv.get(key)
    return clean_text(value) if isinstance(value, str) else ""


# ------------------------------------------------------------------ ChatGPT


def _chatgpt(conv: dict[str, Any], label: str, skipped: list[str]) -> list[EpisodeDraft]:
    mapping: dict[str, Any] = conv["mapping"]
    title = _title(conv, "title")
    conv_time = to_utc_iso(conv.get("create_time"))
    out: list[EpisodeDraft] = []
    for node_id in _tree_order(mapping):
        node = mapping[node_id]
        if not isinstance(node, dict):
            skipped.append(f"{label}: node {node_id!r} is not an object")
            continue
        msg = node.get("message")
        if msg is None:  # the root of every tree, and placeholder nodes
            continue
        if not isinstance(msg, dict):
            skipped.append(f"{label}: node {node_id!r} has a malformed message")
            continue
        author = _obj(msg.get("author"))
        role = _CHATGPT_ROLES.get(str(author.get("role") or "").lower())
        if role is None:  # system, tool
            continue
        meta = _obj(msg.get("metadata"))
        if meta.get("is_visually_hidden_from_conversation") or meta.get("is_user_system_message"):
            continue
        recipient = msg.get("recipient")
        if role == "assistant" and recipient not in (None, "all"):  # a call to a tool
            continue
        content = msg.get("content")
        if not isinstance(content, dict):
            skipped.append(f"{label}: message {node_id!r} has no content")
            continue
        if content.get("content_type", "text") not in _CHATGPT_TEXT_TYPES:
            continue
        body = clean_text(_chatgpt_parts(content.get("parts")))
        if not body:
            continue
        mid = msg.get("id") if isinstance(msg.get("id"), str) and msg.get("id") else node_id
        name = author.get("name")
        out.append(EpisodeDraft(
            text=body, locator=str(mid),
            speaker=name if isinstance(name, str) and name.strip() else role,
            role=role, occurred_at=to_utc_iso(msg.get("create_time")) or conv_time,
            context=title,
        ))
    return out


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _chatgpt_parts(parts: object) -> str:
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        return ""
    texts: list[str] = []
    for p in parts:
        if isinstance(p, str):
            texts.append(p)
        elif isinstance(p, dict) and isinstance(p.get("text"), str):
            texts.append(p["text"])  # e.g. audio_transcription; images carry no text
    return "\n".join(t for t in texts if t.strip())


def _tree_order(mapping: dict[str, Any]) -> list[str]:
    """Node ids root first, each branch in children order; unreachable nodes at the end."""
    order: list[str] = []
    seen: set[str] = set()
    roots = [k for k, v in mapping.items()
             if not isinstance(v, dict) or v.get("parent") not in mapping]
    for root in roots:
        stack = [root]
        while stack:
            nid = stack.pop()
            if nid in seen or nid not in mapping:
                continue
            seen.add(nid)
            order.append(nid)
            node = mapping[nid]
            children = node.get("children") if isinstance(node, dict) else None
            if isinstance(children, list):
                stack.extend(str(c) for c in reversed(children) if isinstance(c, str))
    order.extend(k for k in mapping if k not in seen)  # cycles: still read, once
    return order


# ------------------------------------------------------------------ Claude


def _claude(conv: dict[str, Any], label: str, skipped: list[str]) -> list[EpisodeDraft]:
    title = _title(conv, "name")
    conv_time = to_utc_iso(conv.get("created_at"))
    out: list[EpisodeDraft] = []
    for i, msg in enumerate(conv["chat_messages"], start=1):
        if not isinstance(msg, dict):
            skipped.append(f"{label}: message {i} is not an object")
            continue
        role = _CLAUDE_ROLES.get(str(msg.get("sender") or "").lower())
        if role is None:
            continue
        body = clean_text(_claude_text(msg))
        if not body:
            continue
        mid = msg.get("uuid")
        if not isinstance(mid, str) or not mid:
            skipped.append(f"{label}: message {i} has no uuid")
            continue
        out.append(EpisodeDraft(
            text=body, locator=mid, speaker=role, role=role,
            occurred_at=to_utc_iso(msg.get("created_at")) or conv_time, context=title,
        ))
    return out


def _claude_text(msg: dict[str, Any]) -> str:
    content = msg.get("content")
    if isinstance(content, list):
        texts = [b["text"] for b in content
                 if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)]
        if any(t.strip() for t in texts):
            return "\n\n".join(t for t in texts if t.strip())
        if any(isinstance(b, dict) and b.get("type") for b in content):
            return ""  # only tool use/results or thinking: no prose in this message
    text = msg.get("text")
    return text if isinstance(text, str) else ""
