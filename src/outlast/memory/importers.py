"""Import of claude.ai and ChatGPT data exports, streamed: memory stays bounded whatever the size.

The file may be the export's zip or its ``conversations.json``. Conversations are parsed one
at a time (ijson) and stored in batches; importing the same export again adds nothing. A
conversation that cannot be read is reported with its number and id and skipped; a file that
breaks off (malformed or truncated JSON) keeps what came before the break, and the report
says where it broke.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import ijson

from outlast.store.base import ImportedConversation, ImportResult, NewMessage, Store

BATCH = 200
SOURCES = ("claude", "chatgpt")


@dataclass
class ImportReport:
    file: str
    result: ImportResult = field(default_factory=ImportResult)
    problems: list[str] = field(default_factory=list)  # conversations skipped, and why
    broken: str | None = None  # where and why reading stopped early
    read: int = 0  # conversations read from the file


class _Counting(io.RawIOBase):
    """A read-only stream that counts bytes, for the progress bar and for saying where JSON broke."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


@contextmanager
def open_export(path: Path) -> Iterator[tuple[str, IO[bytes], int]]:
    """``(name, stream, size)`` of the conversations JSON inside ``path`` (a zip or the JSON itself)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [i for i in archive.infolist() if Path(i.filename).name == "conversations.json"]
            if not members:
                raise ValueError(f"{path}: the zip holds no conversations.json")
            member = min(members, key=lambda i: i.filename.count("/"))
            with archive.open(member) as stream:
                yield f"{path}:{member.filename}", stream, member.file_size
    else:
        with open(path, "rb") as stream:
            yield str(path), stream, path.stat().st_size


def import_file(store: Store, path: Path, source: str,
                progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Import one export; ``progress(bytes_read, total)`` is called as it goes."""
    convert = {"claude": claude_conversation, "chatgpt": chatgpt_conversation}[source]
    with open_export(path) as (name, stream, size):
        report = ImportReport(name)
        counting = _Counting(stream)
        reader = io.BufferedReader(counting, 1 << 16)
        first = reader.peek(64).lstrip()[:1]
        if first != b"[":
            report.broken = f"{name}: expected a JSON array of conversations, found {first.decode(errors='replace')!r}"
            return report
        batch: list[ImportedConversation] = []
        try:
            for index, raw in enumerate(ijson.items(reader, "item", use_float=True), 1):
                report.read = index
                try:
                    batch.append(convert(raw))
                except (KeyError, TypeError, ValueError, AttributeError) as error:
                    ident = raw.get("uuid") or raw.get("id") if isinstance(raw, dict) else None
                    report.problems.append(f"{name}: conversation #{index}" + (f" ({ident})" if ident else "")
                                           + f": {_describe(error)}; skipped")
                if len(batch) >= BATCH:
                    report.result += store.import_conversations(batch)
                    batch = []
                    if progress is not None:
                        progress(counting.position, size)
        except ijson.JSONError as error:
            report.broken = (f"{name}: the JSON breaks off after conversation #{report.read}, near byte "
                             f"{counting.position}: {error}; the conversations before it were imported")
        if batch:
            report.result += store.import_conversations(batch)
        if progress is not None:
            progress(counting.position, size)
        return report


def _describe(error: BaseException) -> str:
    if isinstance(error, KeyError):
        return f"missing field {error.args[0]!r}"
    return str(error) or type(error).__name__


def _when(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------- claude.ai


def claude_conversation(raw: dict[str, Any]) -> ImportedConversation:
    """One conversation of claude.ai's ``conversations.json`` (plain or with content blocks)."""
    uuid = str(raw["uuid"])
    chat = raw["chat_messages"]
    if not isinstance(chat, list):
        raise ValueError("'chat_messages' is not a list")
    messages = [_claude_message(m) for m in chat]
    created = _when(raw.get("created_at")) or 0.0
    return ImportedConversation("claude", uuid, str(raw.get("name") or ""), created,
                                _when(raw.get("updated_at")) or created, [m for m in messages if m.parts])


def _claude_message(raw: dict[str, Any]) -> NewMessage:
    role = "user" if raw["sender"] == "human" else "assistant"
    parts: list[dict[str, Any]] = []
    blocks = raw.get("content")
    if isinstance(blocks, list) and blocks:
        for block in blocks:
            kind = block.get("type")
            if kind == "text" and block.get("text"):
                parts.append({"type": "text", "text": block["text"]})
            elif kind == "thinking" and block.get("thinking"):
                parts.append({"type": "thinking", "thinking": block["thinking"]})
            elif kind == "tool_use":
                parts.append({"type": "tool_use", "id": block.get("id"), "name": block.get("name") or "tool",
                              "input": block.get("input") or {}})
            elif kind == "tool_result":
                parts.append({"type": "tool_result", "tool_use_id": block.get("tool_use_id"),
                              "content": _result_content(block.get("content")),
                              "is_error": bool(block.get("is_error"))})
    elif raw.get("text"):
        parts.append({"type": "text", "text": raw["text"]})
    for attachment in raw.get("attachments") or ():
        text = attachment.get("extracted_content")
        if text:
            parts.append({"type": "text", "text": f"[attachment {attachment.get('file_name', '')}]\n{text}"})
    for file in raw.get("files") or ():
        if file.get("file_name"):
            parts.append({"type": "text", "text": f"[file {file['file_name']}]"})
    return NewMessage(role, parts, _when(raw.get("created_at")))


def _result_content(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    out = []
    for item in content or ():
        if isinstance(item, dict) and item.get("text"):
            out.append({"type": "text", "text": item["text"]})
        elif isinstance(item, str):
            out.append({"type": "text", "text": item})
    return out


# --------------------------------------------------------------------------- ChatGPT


def chatgpt_conversation(raw: dict[str, Any]) -> ImportedConversation:
    """One conversation of ChatGPT's ``conversations.json``: the branch that ends at
    ``current_node`` (walk the parents, then reverse); regenerated answers off it are left out."""
    ident = str(raw.get("conversation_id") or raw["id"])
    mapping = raw["mapping"]
    if not isinstance(mapping, dict):
        raise ValueError("'mapping' is not an object")
    node_id = raw.get("current_node")
    if node_id is None:  # no pointer: follow the last child from the root
        roots = [k for k, n in mapping.items() if not n.get("parent")]
        node_id = roots[0] if roots else None
        while node_id is not None and mapping[node_id].get("children"):
            node_id = mapping[node_id]["children"][-1]
    branch = []
    seen = set()
    while node_id is not None:
        if node_id in seen:
            raise ValueError(f"the mapping has a cycle at node {node_id!r}")
        seen.add(node_id)
        node = mapping.get(node_id)
        if node is None:
            raise ValueError(f"current branch names node {node_id!r}, which is not in the mapping")
        branch.append(node)
        node_id = node.get("parent")
    messages: list[NewMessage] = []
    model = raw.get("default_model_slug")
    for node in reversed(branch):
        message = node.get("message")
        if not message:
            continue
        metadata = message.get("metadata") or {}
        if metadata.get("is_visually_hidden_from_conversation"):
            continue
        role = (message.get("author") or {}).get("role", "user")
        parts = _chatgpt_parts(message.get("content") or {})
        if not parts or (role == "system" and not any(p.get("text", "").strip() for p in parts)):
            continue
        if role == "assistant" and metadata.get("model_slug"):
            model = metadata["model_slug"]
        messages.append(NewMessage(role, parts, _when(message.get("create_time"))))
    created = _when(raw.get("create_time")) or 0.0
    return ImportedConversation("chatgpt", ident, str(raw.get("title") or ""), created,
                                _when(raw.get("update_time")) or created, messages, model=model)


def _chatgpt_parts(content: dict[str, Any]) -> list[dict[str, Any]]:
    kind = content.get("content_type")
    if kind == "thoughts":
        return [{"type": "thinking", "thinking": t.get("content", "")} for t in content.get("thoughts") or ()
                if isinstance(t, dict) and t.get("content")]
    if kind == "reasoning_recap":
        return []  # "Thought for 12 seconds": the thoughts themselves are kept
    if kind == "code":
        language = content.get("language") or ""
        language = "" if language == "unknown" else language
        code = content.get("text")
        return [{"type": "text", "text": f"```{language}\n{code}\n```"}] if code else []
    parts: list[dict[str, Any]] = []
    for piece in content.get("parts") or ():
        if isinstance(piece, str):
            if piece:
                parts.append({"type": "text", "text": piece})
        elif isinstance(piece, dict):
            if piece.get("text"):
                parts.append({"type": "text", "text": str(piece["text"])})
            elif piece.get("content_type") == "image_asset_pointer" or "asset_pointer" in piece:
                parts.append({"type": "text", "text": "[image]"})
    if not parts and isinstance(content.get("text"), str) and content["text"]:
        parts.append({"type": "text", "text": content["text"]})  # execution_output, tether_quote, ...
    if not parts and isinstance(content.get("result"), str) and content["result"]:
        parts.append({"type": "text", "text": content["result"]})
    return parts
