"""A hand-off bundle: one Markdown file that lets any assistant pick a conversation up.

It leads with what a newcomer needs (the task and the plan as last stated, the files,
commands and tool calls mentioned, the questions still open) and ends with the whole
conversation. Extraction is heuristic and deliberately plain: it quotes, never summarises.
"""

from __future__ import annotations

import re
from typing import Any

from outlast.memory.export import as_markdown, iso
from outlast.store.base import Conversation, StoredMessage

_PATH = re.compile(r"(?<![\w/.:-])((?:\.{0,2}/)?(?:[\w.-]+/)*[\w-]+\.[A-Za-z][\w]{0,9})(?![\w/])")
_NOT_FILES = re.compile(r"^(?:\d+(?:\.\d+)*|e\.g|i\.e|etc\.\w+|www\.[\w.]+|[\w.-]+\.(?:com|org|net|io|ai))$",
                        re.IGNORECASE)
_FENCE = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
_SHELL = {"", "sh", "bash", "shell", "console", "zsh", "powershell", "ps1", "cmd"}
_PLAN_WORDS = re.compile(r"\b(plan|steps?|next|todo|to do|approach)\b", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•]|\[[ x]\])\s+\S", re.MULTILINE)


def _texts(message: StoredMessage) -> list[str]:
    return [str(p.get("text", "")) for p in message.parts if p.get("type") == "text"]


def _tool_calls(conversation: Conversation) -> list[dict[str, Any]]:
    return [p for m in conversation.messages for p in m.parts if p.get("type") == "tool_use"]


def last_task(conversation: Conversation) -> str | None:
    """The last thing the user asked for in words (tool results are not asks)."""
    for message in reversed(conversation.messages):
        if message.role == "user":
            text = "\n".join(t for t in _texts(message) if not t.startswith("[file ")).strip()
            if text:
                return text
    return None


def last_plan(conversation: Conversation) -> str | None:
    """The last assistant message that lays out steps: a list, near a word like "plan" or "next"."""
    for message in reversed(conversation.messages):
        if message.role != "assistant":
            continue
        text = "\n".join(_texts(message))
        if len(_LIST_ITEM.findall(text)) >= 2 and _PLAN_WORDS.search(text):
            return text.strip()
    return None


def files_mentioned(conversation: Conversation) -> list[str]:
    found: dict[str, None] = {}
    for message in conversation.messages:
        for text in [*_texts(message), *(str(p.get("input")) for p in message.parts if p.get("type") == "tool_use")]:
            for match in _PATH.findall(text):
                if not _NOT_FILES.match(match) and not match.startswith("."):
                    found.setdefault(match, None)
    return list(found)


def commands_mentioned(conversation: Conversation) -> list[str]:
    found: dict[str, None] = {}
    for message in conversation.messages:
        for text in _texts(message):
            for language, body in _FENCE.findall(text):
                if language.lower() in _SHELL and body.strip():
                    found.setdefault(body.strip(), None)
            for line in text.splitlines():
                if line.startswith("$ "):
                    found.setdefault(line[2:].strip(), None)
    for call in _tool_calls(conversation):
        command = (call.get("input") or {}).get("command")
        if isinstance(command, str):
            found.setdefault(command.strip(), None)
    return list(found)


def open_questions(conversation: Conversation) -> list[str]:
    """Questions in the last exchange: the assistant's last message, and a user's last message
    that has no answer yet."""
    questions: list[str] = []
    tail = conversation.messages[-2:]
    for message in tail:
        for text in _texts(message):
            for sentence in re.split(r"(?<=[.?!])\s+|\n+", text):
                sentence = sentence.strip()
                if sentence.endswith("?") and len(sentence) > 3 and not sentence.startswith(("```", "$")):
                    questions.append(f"({message.role}) {sentence}")
    return questions


def handoff_markdown(conversation: Conversation) -> str:
    s = conversation.summary
    lines = [f"# Hand-off: {s.title or '(untitled)'}", "",
             f"Conversation `{s.id}` ({s.source}{', ' + s.model if s.model else ''}), "
             f"{len(conversation.messages)} messages, last active {iso(s.updated)}.",
             f"Continue it here with `outlast chat --resume {s.id}`, or paste this file into any assistant.", ""]

    def section(title: str, body: list[str] | str | None, empty: str) -> None:
        lines.extend([f"## {title}", ""])
        if not body:
            lines.extend([empty, ""])
        elif isinstance(body, str):
            lines.extend([body, ""])
        else:
            lines.extend([*(f"- {item}" for item in body), ""])

    section("Task, as last stated", last_task(conversation), "(no request in words)")
    section("Plan, as last stated", last_plan(conversation), "(no plan laid out)")
    section("Files mentioned", [f"`{f}`" for f in files_mentioned(conversation)], "(none)")
    commands = commands_mentioned(conversation)
    lines.extend(["## Commands mentioned", ""])
    if commands:
        for command in commands:
            lines.extend(["```sh", command, "```", ""])
    else:
        lines.extend(["(none)", ""])
    calls = [f"`{c.get('name')}` {_short(c.get('input'))}" for c in _tool_calls(conversation)]
    section("Tool calls", calls, "(none)")
    section("Open questions", open_questions(conversation), "(none found in the last exchange)")
    lines.extend(["---", "", as_markdown(conversation)])
    return "\n".join(lines)


def _short(value: Any, limit: int = 160) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
