"""ChatGPT and Claude `conversations.json` exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cairn.errors import BadInput
from cairn.ingest.sources import chat_exports


def _node(nid: str, parent: str | None, children: list[str], message: dict[str, Any] | None,
          ) -> dict[str, Any]:
    return {"id": nid, "parent": parent, "children": children, "message": message}


def _msg(mid: str, role: str, parts: list[Any], t: float | None, *, ctype: str = "text",
         recipient: str = "all", name: str | None = None, **meta: Any) -> dict[str, Any]:
    return {"id": mid, "author": {"role": role, "name": name, "metadata": {}},
            "create_time": t, "update_time": None,
            "content": {"content_type": ctype, "parts": parts},
            "status": "finished_successfully", "end_turn": True, "weight": 1.0,
            "metadata": dict(meta), "recipient": recipient}


def chatgpt_export() -> list[dict[str, Any]]:
    mapping = {
        "root-0": _node("root-0", None, ["sys-1"], None),
        "sys-1": _node("sys-1", "root-0", ["ctx-2"], _msg(
            "sys-1", "system", [""], None, is_visually_hidden_from_conversation=True)),
        "ctx-2": _node("ctx-2", "sys-1", ["u-3"], {
            **_msg("ctx-2", "user", [], 1715170000.0, ctype="user_editable_context",
                   is_visually_hidden_from_conversation=True),
            "content": {"content_type": "user_editable_context",
                        "user_profile": "I am a nurse", "user_instructions": "Be brief"}}),
        "u-3": _node("u-3", "ctx-2", ["a-4"], _msg(
            "u-3", "user", ["I moved to Lisbon in June and I love it."], 1715170560.5)),
        "a-4": _node("a-4", "u-3", ["a-5"], _msg(
            "a-4", "assistant", ["print(1)"], 1715170570.0, ctype="code", recipient="python")),
        "a-5": _node("a-5", "a-4", ["t-6"], _msg(
            "a-5", "tool", ["1"], 1715170571.0, ctype="execution_output", name="python")),
        "t-6": _node("t-6", "a-5", ["a-7"], _msg(
            "t-6", "assistant", ["Lisbon is lovely in June.", ""], 1715170580.0)),
        "a-7": _node("a-7", "t-6", ["u-8", "u-9"], _msg(
            "a-7", "assistant", [], 1715170581.0)),  # empty: skipped quietly
        # Two branches: the user edited their question; both versions are kept.
        "u-8": _node("u-8", "a-7", [], _msg(
            "u-8", "user", [{"content_type": "image_asset_pointer", "asset_pointer": "x"},
                            "What is in this photo?"], 1715170600.0, ctype="multimodal_text")),
        "u-9": _node("u-9", "a-7", [], _msg(
            "u-9", "user", ["What is in this picture?"], 1715170610.0)),
    }
    return [
        {"title": "Moving to Lisbon", "create_time": 1715170500.0, "update_time": 1715170610.0,
         "mapping": mapping, "current_node": "u-9", "conversation_id": "conv-1",
         "id": "conv-1"},
        {"title": "Empty chat", "create_time": 1715170000.0, "mapping": {
            "r": _node("r", None, [], None)}, "current_node": "r"},
    ]


def claude_export() -> list[dict[str, Any]]:
    return [{
        "uuid": "c-1", "name": "Garden plans", "created_at": "2026-05-08T13:00:00.000000Z",
        "updated_at": "2026-05-08T14:00:00Z", "account": {"uuid": "acc"},
        "chat_messages": [
            {"uuid": "m-1", "text": "I planted tomatoes yesterday.", "sender": "human",
             "created_at": "2026-05-08T13:56:00.123456+00:00", "content": [
                 {"type": "text", "text": "I planted tomatoes yesterday."}],
             "attachments": [], "files": []},
            {"uuid": "m-2", "sender": "assistant", "created_at": "2026-05-08T13:56:05Z",
             "text": "```\nThis block is not supported on your current device yet.\n```\n\nWater them.",
             "content": [
                 {"type": "thinking", "thinking": "The user gardens."},
                 {"type": "tool_use", "name": "web_search", "input": {"q": "tomatoes"}},
                 {"type": "tool_result", "content": [{"type": "text", "text": "results"}]},
                 {"type": "text", "text": "Water them every morning."}]},
            {"uuid": "m-3", "sender": "human", "created_at": "2026-05-08T13:57:00Z",
             "text": "   ", "content": []},
            {"sender": "human", "text": "no id here", "created_at": "2026-05-08T13:58:00Z"},
            {"uuid": "m-5", "sender": "human", "created_at": "2026-05-08 14:00:00",
             "text": "Old exports have only text."},
            "garbage",
        ],
    }]


def _write(tmp_path: Path, obj: Any, name: str = "conversations.json") -> tuple[Path, bytes]:
    p = tmp_path / name
    data = json.dumps(obj, indent=1).encode()
    p.write_bytes(data)
    return p, data


def test_chatgpt_export_keeps_user_and_assistant_prose(tmp_path: Path) -> None:
    p, data = _write(tmp_path, chatgpt_export())
    parsed = chat_exports.parse(p, data)
    assert parsed.kind == "chat"
    got = [(e.locator, e.role, e.speaker, e.text) for e in parsed.episodes]
    assert got == [
        ("u-3", "user", "user", "I moved to Lisbon in June and I love it."),
        ("t-6", "assistant", "assistant", "Lisbon is lovely in June."),
        ("u-8", "user", "user", "What is in this photo?"),
        ("u-9", "user", "user", "What is in this picture?"),
    ]
    first = parsed.episodes[0]
    assert first.context == "Moving to Lisbon"
    assert first.occurred_at == "2024-05-08T12:16:00Z"
    assert parsed.skipped == []


def test_chatgpt_message_without_time_takes_conversation_time(tmp_path: Path) -> None:
    convs = chatgpt_export()
    convs[0]["mapping"]["u-3"]["message"]["create_time"] = None
    p, data = _write(tmp_path, convs)
    ep = chat_exports.parse(p, data).episodes[0]
    assert ep.occurred_at == "2024-05-08T12:15:00Z"


def test_claude_export_messages(tmp_path: Path) -> None:
    p, data = _write(tmp_path, claude_export())
    parsed = chat_exports.parse(p, data)
    got = [(e.locator, e.role, e.speaker, e.text, e.occurred_at) for e in parsed.episodes]
    assert got == [
        ("m-1", "user", "user", "I planted tomatoes yesterday.", "2026-05-08T13:56:00Z"),
        ("m-2", "assistant", "assistant", "Water them every morning.", "2026-05-08T13:56:05Z"),
        ("m-5", "user", "user", "Old exports have only text.", "2026-05-08T14:00:00Z"),
    ]
    assert {e.context for e in parsed.episodes} == {"Garden plans"}
    assert any("message 4 has no uuid" in s for s in parsed.skipped)
    assert any("message 6 is not an object" in s for s in parsed.skipped)


def test_both_formats_and_wrapper_object(tmp_path: Path) -> None:
    p, data = _write(tmp_path, {"conversations": claude_export() + chatgpt_export()},
                     name="export.json")
    parsed = chat_exports.parse(p, data)
    assert {e.locator for e in parsed.episodes} >= {"m-1", "u-3"}


def test_truncated_export_keeps_complete_conversations(tmp_path: Path) -> None:
    convs = claude_export() + chatgpt_export()
    data = json.dumps(convs).encode()
    cut = data[: data.index(b'"Moving to Lisbon"') + 200]  # inside the second conversation
    p = tmp_path / "conversations.json"
    p.write_bytes(cut)
    parsed = chat_exports.parse(p, cut)
    assert [e.locator for e in parsed.episodes] == ["m-1", "m-2", "m-5"]
    assert any("conversation 2 onwards: truncated JSON" in s for s in parsed.skipped)


def test_truncated_first_conversation_is_bad_input(tmp_path: Path) -> None:
    data = json.dumps(chatgpt_export()).encode()[:500]
    with pytest.raises(BadInput, match="truncated JSON"):
        chat_exports.parse(tmp_path / "conversations.json", data)


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty file"),
    (b"   \n", "empty file"),
    (b"hello world", "not a JSON list"),
    (b'{"title": "x", ', "not valid JSON"),
    (b"[1, 2, 3]", "not a JSON object"),
    (b'[{"title": "no mapping"}]', "not a ChatGPT or Claude export"),
    (b'["a" "b"]', "invalid JSON"),
    (b"\xff\xfe[]", "not valid UTF-8"),
])
def test_bad_exports_are_one_line_errors(tmp_path: Path, data: bytes, reason: str) -> None:
    with pytest.raises(BadInput, match=reason):
        chat_exports.parse(tmp_path / "conversations.json", data)


def test_malformed_nodes_are_skipped_not_fatal(tmp_path: Path) -> None:
    convs = chatgpt_export()
    convs[0]["mapping"]["u-9"]["message"] = "oops"
    convs[0]["mapping"]["zz"] = 5
    convs[0]["mapping"]["u-8"]["message"]["content"] = None
    p, data = _write(tmp_path, convs)
    parsed = chat_exports.parse(p, data)
    assert [e.locator for e in parsed.episodes] == ["u-3", "t-6"]
    assert len(parsed.skipped) == 3


def test_duplicate_message_ids_are_kept_once(tmp_path: Path) -> None:
    convs = claude_export() + claude_export()
    p, data = _write(tmp_path, convs)
    parsed = chat_exports.parse(p, data)
    assert [e.locator for e in parsed.episodes] == ["m-1", "m-2", "m-5"]
    assert sum("duplicate message id" in s for s in parsed.skipped) == 3


def test_matches_by_name_and_head(tmp_path: Path) -> None:
    chatgpt = json.dumps(chatgpt_export()).encode()[:4096]
    claude = json.dumps(claude_export()).encode()[:4096]
    assert chat_exports.matches(Path("/x/conversations.json"), b"")
    assert chat_exports.matches(Path("/x/Conversations.JSON"), b"")
    assert chat_exports.matches(Path("/x/chatgpt-2026.json"), chatgpt)
    assert chat_exports.matches(Path("/x/claude.json"), claude)
    assert not chat_exports.matches(Path("/x/package.json"), b'{"name": "x", "version": "1"}')
    assert not chat_exports.matches(Path("/x/notes.md"), chatgpt)
    assert not chat_exports.matches(Path("/x/a.chat.jsonl"), chatgpt)


def test_pipeline_routes_exports_here() -> None:
    from cairn.ingest.pipeline import adapter_for

    picked = adapter_for(Path("/x/conversations.json"), b"[")
    assert picked is not None and picked[1] is chat_exports
