"""Fuzzing the dialect parsers: whatever arrives, they fail only with the project's typed errors.

Inbound, ``parse_request`` may raise only :class:`RequestError` (the gateway's 400 in the caller's
dialect); outbound, ``parse_response``, ``StreamParser.feed``/``finish`` only :class:`UpstreamError`
(a failure class the router can act on), and ``classify_error`` always returns one. A KeyError,
TypeError, AttributeError or RecursionError escaping any of them would be a 500 or a stream that
breaks without a failure class. The values are built from the fields the parsers read, so that
most of them get past the first checks.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outlast.dialects import anthropic_messages, gemini, openai_chat
from outlast.dialects.canonical import Request, Response, Start, Stop
from outlast.providers.errors import RequestError, UpstreamError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Field names and values the three families use, so that generated documents reach deep code.
NAMES = [
    "model", "messages", "role", "content", "type", "text", "max_tokens", "max_completion_tokens", "temperature",
    "top_p", "top_k", "n", "stop", "stop_sequences", "stream", "stream_options", "include_usage", "tools",
    "tool_choice", "parallel_tool_calls", "user", "function", "name", "arguments", "parameters", "description",
    "id", "tool_calls", "tool_call_id", "refusal", "image_url", "url", "system", "metadata", "user_id",
    "thinking", "budget_tokens", "signature", "data", "source", "media_type", "input", "input_schema",
    "tool_use_id", "is_error", "cache_control", "disable_parallel_tool_use", "choices", "message", "delta",
    "finish_reason", "index", "usage", "prompt_tokens", "completion_tokens", "prompt_tokens_details",
    "cached_tokens", "reasoning_content", "reasoning", "error", "code", "param", "stop_reason",
    "stop_sequence", "content_block", "partial_json", "input_tokens", "output_tokens", "candidates", "parts",
    "functionCall", "args", "thought", "finishReason", "usageMetadata", "promptTokenCount",
    "candidatesTokenCount", "cachedContentTokenCount", "thoughtsTokenCount", "promptFeedback", "blockReason",
    "responseId", "modelVersion", "status", "details", "reason", "retryDelay",
]
WORDS = [
    "user", "assistant", "system", "developer", "tool", "text", "image", "image_url", "document", "tool_use",
    "tool_result", "thinking", "redacted_thinking", "base64", "url", "function", "auto", "any", "none",
    "required", "custom", "enabled", "adaptive", "disabled", "stop", "length", "tool_calls", "content_filter",
    "end_turn", "max_tokens", "refusal", "message_start", "content_block_start", "content_block_delta",
    "content_block_stop", "message_delta", "message_stop", "ping", "error", "text_delta", "input_json_delta",
    "thinking_delta", "signature_delta", "overloaded_error", "rate_limit_error", "invalid_request_error",
    "MAX_TOKENS", "SAFETY", "MALFORMED_FUNCTION_CALL", "RESOURCE_EXHAUSTED", "INVALID_ARGUMENT",
    "data:image/png;base64,AAAA", "[DONE]", "{}", "{\"a\": 1}", "context_length_exceeded", "1.5s",
]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12), st.sampled_from(WORDS),
)
keys = st.one_of(st.sampled_from(NAMES), st.text(max_size=6))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=6)),
    max_leaves=40,
)
documents = st.dictionaries(keys, json_values, max_size=8)
# A request whose top level is right more often than not, so the parsers reach the messages.
messages = st.lists(st.dictionaries(st.sampled_from(["role", "content", "tool_calls", "tool_call_id", "name",
                                                     "refusal"]), json_values, max_size=4), max_size=4)
requests = st.fixed_dictionaries(
    {"model": st.one_of(st.just("m"), scalars), "messages": st.one_of(messages, json_values)},
    optional={name: json_values for name in ("max_tokens", "max_completion_tokens", "tools", "tool_choice",
                                             "system", "stream", "thinking", "stop", "metadata", "top_k",
                                             "stream_options", "temperature")},
)
headers = st.dictionaries(st.sampled_from(["anthropic-version", "anthropic-beta", "Anthropic-Beta", "x-other"]),
                          st.text(max_size=20), max_size=3)
raw_bytes = st.one_of(st.binary(max_size=200), json_values.map(orjson.dumps))
stream_data = st.one_of(st.text(max_size=40), json_values.map(lambda v: orjson.dumps(v).decode()),
                        documents.map(lambda v: orjson.dumps(v).decode()))
event_names = st.one_of(st.none(), st.sampled_from(WORDS), st.text(max_size=8))
streams = st.lists(st.tuples(event_names, stream_data), max_size=8)
statuses = st.integers(min_value=100, max_value=599)
error_headers = st.dictionaries(st.sampled_from(["retry-after", "retry-after-ms", "Retry-After", "x-other"]),
                                st.one_of(st.text(max_size=12), st.sampled_from(["1", "0.5", "-3", "1e400", "nan",
                                                                                 "Wed, 21 Oct 2015 07:28:00 GMT",
                                                                                 "Wed, 21 Oct 2015 07:28:00 -0000"])),
                                max_size=3)

INBOUND = [openai_chat, anthropic_messages]
OUTBOUND = [openai_chat, anthropic_messages, gemini]


def check_request(module: Any, body: object, sent_headers: dict[str, str] | None = None) -> None:
    try:
        request = module.parse_request(body, sent_headers)
    except RequestError as error:
        assert 400 <= error.status < 500 and error.message
        return
    assert isinstance(request, Request) and request.messages


@FUZZ
@given(body=json_values, sent=headers)
def test_parse_request_raises_only_request_errors_on_any_value(body: object, sent: dict[str, str]) -> None:
    for module in INBOUND:
        check_request(module, body, sent)


@FUZZ
@given(body=requests, sent=headers)
def test_parse_request_raises_only_request_errors_on_request_like_documents(body: dict[str, Any],
                                                                           sent: dict[str, str]) -> None:
    for module in INBOUND:
        check_request(module, body, sent)


@FUZZ
@given(raw=raw_bytes)
def test_parse_request_on_any_bytes_the_gateway_could_decode(raw: bytes) -> None:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return  # the gateway answers 400 before any parser sees it
    for module in INBOUND:
        check_request(module, body)


def check_response(module: Any, body: object) -> None:
    try:
        response = module.parse_response(body)
    except UpstreamError as error:
        assert error.message
        return
    assert isinstance(response, Response)


@FUZZ
@given(body=st.one_of(json_values, documents))
def test_parse_response_raises_only_upstream_errors(body: object) -> None:
    for module in OUTBOUND:
        check_response(module, body)


@FUZZ
@given(raw=raw_bytes)
def test_parse_response_on_any_bytes_an_upstream_could_send(raw: bytes) -> None:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return  # the adapter reports MALFORMED before the parser
    for module in OUTBOUND:
        check_response(module, body)


@FUZZ
@given(events=streams, end=st.booleans())
def test_stream_parsers_raise_only_upstream_errors(events: list[tuple[str | None, str]], end: bool) -> None:
    for module in OUTBOUND:
        parser = module.StreamParser()
        emitted: list[Any] = []
        try:
            for name, data in events:
                emitted.extend(parser.feed(name, data))
            if end:
                emitted.extend(parser.finish())
        except UpstreamError as error:
            assert error.message
            continue
        # Whatever came out is in canonical order: one Start first, at most one Stop, last.
        starts = [i for i, e in enumerate(emitted) if isinstance(e, Start)]
        stops = [i for i, e in enumerate(emitted) if isinstance(e, Stop)]
        assert starts in ([], [0])
        assert len(stops) <= 1 and (not stops or stops[0] == len(emitted) - 1)


@FUZZ
@given(status=statuses, body=raw_bytes, sent=error_headers)
def test_classify_error_always_returns_an_upstream_error(status: int, body: bytes, sent: dict[str, str]) -> None:
    for module in OUTBOUND:
        error = module.classify_error(status, body, sent)
        assert isinstance(error, UpstreamError) and error.message
        assert error.retry_after is None or (math.isfinite(error.retry_after) and error.retry_after >= 0)


@pytest.mark.parametrize("value", ["1e400", "inf", "nan", "Wed, 21 Oct 2015 07:28:00 -0000"])
def test_a_retry_after_that_says_no_usable_time_gives_none_or_zero(value: str) -> None:
    for module in OUTBOUND:
        error = module.classify_error(429, b"{}", {"retry-after": value})
        assert error.retry_after in (None, 0.0)


@FUZZ
@given(status=statuses, error=json_values, sent=error_headers)
def test_classify_error_reads_any_error_document(status: int, error: object, sent: dict[str, str]) -> None:
    for document in ({"error": error}, {"type": "error", "error": error}, [{"error": error}], error):
        body = orjson.dumps(document)
        for module in OUTBOUND:
            assert isinstance(module.classify_error(status, body, sent), UpstreamError)


def test_deeply_nested_values_are_refused_or_parsed_not_crashed() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = {"type": "text", "text": deep, "content": [deep]}
    for module in INBOUND:
        check_request(module, {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [deep]}]})
    for module in OUTBOUND:
        check_response(module, {"choices": [deep], "content": [deep], "candidates": [deep]})
