"""``outlast chat``: a terminal chat through a running gateway, streamed, stored by its recorder.

It speaks OpenAI Chat Completions to the gateway and names the conversation with
``x-outlast-conversation-id``, so a resumed conversation (stored or imported) grows in place
on whatever route the model name picks.
"""

from __future__ import annotations

import http.client
import os
from collections.abc import Callable, Iterator
from typing import Any, TextIO
from urllib.parse import urlsplit

import orjson

from outlast.store.base import Conversation


class ChatError(Exception):
    pass


def history(conversation: Conversation) -> list[dict[str, Any]]:
    """A stored conversation as Chat Completions messages (text; tool traffic as text).

    Messages with no text (a ChatGPT reasoning-only turn) cannot be sent and are left out; the
    store still appends the new turns after what it holds (``threads.append_point``)."""
    out = []
    for message in conversation.messages:
        role = message.role if message.role in ("user", "assistant", "system") else "user"
        if message.text.strip():
            out.append({"role": role, "content": message.text})
    return out


def stream_reply(base_url: str, key: str | None, model: str, messages: list[dict[str, Any]],
                 conversation_id: str) -> Iterator[str]:
    """Text pieces of the answer as they arrive."""
    parts = urlsplit(base_url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.netloc, timeout=600)
    headers = {"content-type": "application/json", "accept": "text/event-stream",
               "x-outlast-conversation-id": conversation_id}
    if key:
        headers["authorization"] = f"Bearer {key}"
    body = orjson.dumps({"model": model, "messages": messages, "stream": True})
    try:
        connection.request("POST", parts.path.rstrip("/") + "/v1/chat/completions", body, headers)
        response = connection.getresponse()
    except OSError as error:
        raise ChatError(f"cannot reach the gateway at {base_url} ({error}); is `outlast serve` running?") from None
    try:
        if response.status != 200:
            detail = response.read().decode(errors="replace")
            try:
                detail = orjson.loads(detail)["error"]["message"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                pass
            raise ChatError(f"the gateway answered {response.status}: {detail}")
        for raw in response:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            event = orjson.loads(data)
            if "error" in event:
                raise ChatError(str(event["error"].get("message", event["error"])))
            for choice in event.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text
    finally:
        connection.close()


def run_chat(base_url: str, key: str | None, model: str, conversation_id: str,
             messages: list[dict[str, Any]], read: Callable[[], str | None], out: TextIO) -> int:
    """The loop: read a line, stream the answer, until end of input or ``/exit``. Returns turns."""
    turns = 0
    while True:
        line = read()
        if line is None or line.strip() in ("/exit", "/quit"):
            return turns
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line})
        answer: list[str] = []
        try:
            for piece in stream_reply(base_url, key, model, messages, conversation_id):
                answer.append(piece)
                out.write(piece)
                out.flush()
        except ChatError:
            messages.pop()
            raise
        out.write("\n")
        messages.append({"role": "assistant", "content": "".join(answer)})
        turns += 1


def default_key() -> str | None:
    return os.environ.get("OUTLAST_API_KEY") or os.environ.get("OUTLAST_MASTER_KEY")
