"""A vendor whose safety system withholds every answer: the answer ends with a content-filter stop
before any content, in each wire format (OpenAI ``finish_reason: content_filter``, Anthropic
``stop_reason: refusal``, Gemini ``finishReason: SAFETY``).

``outlast sim`` only refuses with a 400 content-policy error, so this small ASGI app stands in
for the vendor; it runs on loopback like the simulator and logs what it was asked.
"""

from __future__ import annotations

from typing import Any

import orjson


def _sse(*events: Any, named: bool = False) -> bytes:
    out = []
    for event in events:
        if event == "[DONE]":
            out.append(b"data: [DONE]\n\n")
            continue
        data = orjson.dumps(event)
        out.append((b"event: " + event["type"].encode() + b"\n" if named else b"") + b"data: " + data + b"\n\n")
    return b"".join(out)


def openai_stream(model: str) -> bytes:
    chunk = {"id": "chatcmpl-filtered", "object": "chat.completion.chunk", "created": 1767225600, "model": model}
    return _sse({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                       "finish_reason": None}]},
                {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}],
                 "usage": {"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9}},
                "[DONE]")


def anthropic_stream(model: str) -> bytes:
    return _sse({"type": "message_start", "message": {
                    "id": "msg_filtered", "type": "message", "role": "assistant", "model": model, "content": [],
                    "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 1}}},
                {"type": "message_delta", "delta": {"stop_reason": "refusal", "stop_sequence": None},
                 "usage": {"output_tokens": 1}},
                {"type": "message_stop"}, named=True)


def gemini_stream(model: str) -> bytes:
    return _sse({"candidates": [{"index": 0, "finishReason": "SAFETY", "safetyRatings": [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}],
                 "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "modelVersion": model,
                 "responseId": "filtered"})


class FilteringUpstream:
    """``/openai/v1/...``, ``/anthropic/v1/messages`` and ``/gemini/v1beta/...``: every answer filtered."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        request = orjson.loads(body) if body else {}
        vendor = path.strip("/").split("/")[0]
        if vendor == "gemini":
            model = path.rsplit("/", 1)[-1].split(":")[0]
            answer = gemini_stream(model)
        elif vendor == "anthropic":
            model = request.get("model", "")
            answer = anthropic_stream(model)
        else:
            model = request.get("model", "")
            answer = openai_stream(model)
        self.requests.append({"vendor": vendor, "model": model, "path": path})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"),
                                (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})
