"""The OpenAI-format vendors (openai, local) through the official openai SDK and raw SSE."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.sim.conftest import KEY

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city", "days"]}}}


def test_json_answer_has_the_documented_shape(oa: openai.OpenAI, sim: Any) -> None:
    raw = oa.chat.completions.with_raw_response.create(
        model="gpt-5.1", messages=[{"role": "user", "content": "Say it. [[reply:Hello from the sim.]]"}])
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-5.1"
    assert completion.choices[0].message.content == "Hello from the sim."
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.usage.completion_tokens == 5  # 19 characters, about 4 a token
    for header in ("x-request-id", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                   "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
                   "x-ratelimit-reset-tokens"):
        assert raw.headers.get(header), header
    record = sim.requests("openai")[-1]
    assert record["headers"]["authorization"] == f"Bearer {KEY}"
    assert record["body"]["messages"][0]["content"].endswith("[[reply:Hello from the sim.]]")
    assert (record["model"], record["stream"], record["status"]) == ("gpt-5.1", False, 200)


def test_stream_with_usage_matches_the_json_answer(oa: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Tell me something."}]
    whole = oa.chat.completions.create(model="gpt-4.1", messages=messages)  # type: ignore[arg-type]
    chunks = list(oa.chat.completions.create(model="gpt-4.1", messages=messages, stream=True,  # type: ignore[arg-type]
                                             stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content and len(text.split()) >= 8
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])
    assert {c.id for c in chunks} == {chunks[0].id}


def test_raw_stream_ends_with_done_and_usage_only_when_asked(sim: Any) -> None:
    body = {"model": "gpt-5", "stream": True, "messages": [{"role": "user", "content": "[[reply:a b]]"}]}
    with httpx.Client(base_url=sim.url, headers={"authorization": f"Bearer {KEY}"}) as http:
        plain = http.post("/openai/v1/chat/completions", json=body)
        with_usage = http.post("/openai/v1/chat/completions",
                               json={**body, "stream_options": {"include_usage": True}})
    assert plain.headers["content-type"].startswith("text/event-stream")
    for response, count in ((plain, 4), (with_usage, 5)):
        frames = response.text.split("\n\n")
        assert frames[-2:] == ["data: [DONE]", ""]
        payloads = [json.loads(f[len("data: "):]) for f in frames[:-2]]
        assert len(payloads) == count
        assert all(f.startswith("data: ") for f in frames[:-1])
    assert "usage" not in json.loads(plain.text.split("\n\n")[0][6:])


def test_tool_call_then_text_after_the_tool_result(oa: openai.OpenAI) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = oa.chat.completions.create(model="gpt-5.1", messages=messages, tools=[WEATHER])  # type: ignore[arg-type,list-item]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.type == "function" and call.id.startswith("call_")
    arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
    assert isinstance(arguments["city"], str) and isinstance(arguments["days"], int)
    messages += [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                 {"role": "tool", "tool_call_id": call.id, "content": "4 C and snowing"}]
    second = oa.chat.completions.create(model="gpt-5.1", messages=messages, tools=[WEATHER])  # type: ignore[arg-type,list-item]
    assert second.choices[0].finish_reason == "stop"
    assert "4 C and snowing" in (second.choices[0].message.content or "")


def test_streamed_tool_call_deltas(oa: openai.OpenAI) -> None:
    chunks = list(oa.chat.completions.create(
        model="gpt-5.1", messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, stream=True))
    deltas = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    head, rest = deltas[0], deltas[1:]
    assert (head.index, head.type, head.function.name, head.function.arguments) == (  # type: ignore[union-attr]
        0, "function", "get_weather", "")
    assert head.id and len(rest) >= 2
    assert all(d.id is None and d.function.name is None and d.index == 0 for d in rest)  # type: ignore[union-attr]
    arguments = json.loads("".join(d.function.arguments for d in rest))  # type: ignore[union-attr,misc]
    assert set(arguments) == {"city", "days"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_small_max_tokens_truncates_with_length(oa: openai.OpenAI) -> None:
    completion = oa.chat.completions.create(model="gpt-4o-mini", max_tokens=3,
                                            messages=[{"role": "user", "content": "Tell me a long story."}])
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    assert 0 < len(completion.choices[0].message.content or "") <= 12


async def test_async_client_stream_and_json(sim: Any) -> None:
    client = openai.AsyncOpenAI(base_url=f"{sim.url}/openai/v1", api_key=KEY, max_retries=0)
    try:
        stream = await client.chat.completions.create(
            model="gpt-5", stream=True, messages=[{"role": "user", "content": "[[reply:async works]]"}])
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "async works"
        completion = await client.chat.completions.create(
            model="gpt-5", messages=[{"role": "user", "content": "[[reply:json too]]"}])
        assert completion.choices[0].message.content == "json too"
    finally:
        await client.close()


def test_models_and_unknown_model(oa: openai.OpenAI) -> None:
    assert [m.id for m in oa.models.list()] == ["gpt-5.1", "gpt-5", "gpt-4o-mini", "gpt-4.1"]
    assert oa.models.retrieve("gpt-5").owned_by == "openai"
    with pytest.raises(openai.NotFoundError) as caught:
        oa.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert "`gpt-9` does not exist" in caught.value.message


def test_missing_and_wrong_keys(sim: Any) -> None:
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=sim.url) as http:
        missing = http.post("/openai/v1/chat/completions", json=body)
        unauthenticated_local = http.post("/local/v1/chat/completions", json={**body, "model": "llama3.2"})
    assert missing.status_code == 401
    assert missing.json()["error"]["message"].startswith("You didn't provide an API key.")
    assert unauthenticated_local.status_code == 200  # Ollama needs no key


def test_request_validation_names_the_parameter(sim: Any) -> None:
    with httpx.Client(base_url=sim.url, headers={"authorization": f"Bearer {KEY}"}) as http:
        no_messages = http.post("/openai/v1/chat/completions", json={"model": "gpt-5"})
        bad_role = http.post("/openai/v1/chat/completions",
                             json={"model": "gpt-5", "messages": [{"role": "wizard", "content": "hi"}]})
        not_json = http.post("/openai/v1/chat/completions", content=b"{nope")
        wrong_path = http.post("/openai/v1/completions/legacy", json={})
    assert no_messages.status_code == 400
    assert no_messages.json()["error"] == {"message": "Missing required parameter: 'messages'.",
                                           "type": "invalid_request_error", "param": "messages",
                                           "code": "missing_required_parameter"}
    assert bad_role.json()["error"]["param"] == "messages[0].role"
    assert not_json.status_code == 400 and "could not parse the JSON body" in not_json.json()["error"]["message"]
    assert wrong_path.status_code == 404 and "Invalid URL" in wrong_path.json()["error"]["message"]


def test_local_model_has_a_small_context_window(sim: Any) -> None:
    local = openai.OpenAI(base_url=f"{sim.url}/local/v1", api_key="ollama", max_retries=0)
    ok = local.chat.completions.create(model="qwen3:8b", messages=[{"role": "user", "content": "x " * 8000}])
    assert ok.system_fingerprint == "fp_ollama"
    with pytest.raises(openai.BadRequestError) as caught:
        local.chat.completions.create(model="qwen3:8b", messages=[{"role": "user", "content": "word " * 8000}])
    assert caught.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
    assert "maximum context length is 8192 tokens" in caught.value.message
    # A model with a bigger window takes the same prompt.
    big = local.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "word " * 8000}])
    assert big.usage is not None and big.usage.prompt_tokens > 8192
    with pytest.raises(openai.NotFoundError) as missing:
        local.chat.completions.create(model="mistral", messages=[{"role": "user", "content": "hi"}])
    assert "try pulling it first" in missing.value.message
