"""The OpenAPI 3.1 description of outlast's own HTTP API, served at ``GET /openapi.json``.

It is data, written by hand next to the code it describes, and checked against the running
gateway by ``tests/web/test_openapi_schemathesis.py`` (schemathesis sends generated requests,
valid and invalid, and validates every answer against this document). The request schemas say
what the dialect parsers in ``outlast.dialects`` accept: a field they reject is constrained here
too, and fields they pass through unmodelled are allowed (``additionalProperties``), as the
vendors' own APIs allow them.

Errors come back in the caller's dialect: OpenAI's ``{"error": {...}}`` on
``/v1/chat/completions`` (and on ``/v1/models`` unless the request carries ``anthropic-version``),
Anthropic's ``{"type": "error", "error": {...}}`` on ``/v1/messages*``, and ``{"error": "..."}`` on
``/outlast/v1/*``. The HTTP server's own refusals (431, 408) carry a body both SDKs can read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from outlast import __version__

JSON = "application/json"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: dict[str, Schema], required: tuple[str, ...] = (), *, closed: bool = False) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def _json(schema: Schema, description: str, headers: dict[str, Any] | None = None) -> Schema:
    response: Schema = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


STRING: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
INT: Schema = {"type": "integer"}
POSITIVE: Schema = {"type": "integer", "minimum": 1}
NUMBER: Schema = {"type": "number"}
ANY_OBJECT: Schema = {"type": "object"}

# --------------------------------------------------------------------------- OpenAI Chat Completions

_TEXT_PART: Schema = _obj({"type": {"const": "text"}, "text": STRING}, ("type", "text"))
_REFUSAL_PART: Schema = _obj({"type": {"const": "refusal"}, "refusal": STRING}, ("type", "refusal"))
# A data: URL must be base64 with a media type; any other non-empty string is taken as a URL.
_IMAGE_URL: Schema = {"type": "string", "pattern": "^(data:[^;,]+;base64,|(?!data:).)"}
_IMAGE_PART: Schema = _obj({"type": {"const": "image_url"},
                            "image_url": {"anyOf": [_obj({"url": _IMAGE_URL}, ("url",)),
                                                    _IMAGE_URL]}},
                           ("type", "image_url"))


def _text_content(*parts: Schema) -> Schema:
    return {"anyOf": [STRING, {"type": "array", "items": {"anyOf": list(parts)}}]}


_TOOL_CALL: Schema = _obj({
    "id": STRING,
    "type": {"const": "function"},
    "function": _obj({"name": STRING, "arguments": {"type": "string",
                                                    "description": "JSON text of the arguments"}},
                     ("name",)),
}, ("id", "function"))

OPENAI_SCHEMAS: dict[str, Schema] = {
    "ChatSystemMessage": _obj({"role": {"enum": ["system", "developer"]},
                               "content": _text_content(_TEXT_PART)}, ("role", "content")),
    "ChatUserMessage": _obj({"role": {"const": "user"},
                             "content": _text_content(_TEXT_PART, _IMAGE_PART)}, ("role", "content")),
    "ChatAssistantMessage": _obj({
        "role": {"const": "assistant"},
        "content": _nullable(_text_content(_TEXT_PART, _REFUSAL_PART)),
        "refusal": _nullable(STRING),
        "tool_calls": _nullable({"type": "array", "items": _TOOL_CALL}),
    }, ("role",)),
    "ChatToolMessage": _obj({"role": {"const": "tool"}, "tool_call_id": STRING,
                             "content": _nullable(_text_content(_TEXT_PART))}, ("role", "tool_call_id")),
    "ChatMessage": {"anyOf": [_ref("ChatSystemMessage"), _ref("ChatUserMessage"), _ref("ChatAssistantMessage"),
                              _ref("ChatToolMessage")]},
    "ChatTool": _obj({
        "type": {"const": "function"},
        "function": _obj({"name": {"type": "string", "minLength": 1}, "description": _nullable(STRING),
                          "parameters": _nullable({"type": "object", "description": "a JSON Schema"})},
                         ("name",)),
    }, ("function",)),
    "ChatCompletionRequest": {
        "type": "object",
        "description": "OpenAI Chat Completions. Fields outlast does not model (seed, response_format, "
                       "logprobs, reasoning_effort, ...) are passed on to OpenAI-family providers.",
        "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "description": "a route name, or provider/model",
                      "examples": ["gpt-5.1", "to-anthropic"]},
            "messages": {"type": "array", "minItems": 1, "items": _ref("ChatMessage")},
            "max_tokens": _nullable(POSITIVE),
            "max_completion_tokens": _nullable(POSITIVE),
            "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 2}),
            "top_p": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
            "top_k": _nullable(POSITIVE),
            "n": _nullable({"const": 1}),
            "stop": _nullable({"anyOf": [STRING, {"type": "array", "items": STRING}]}),
            "stream": _nullable(BOOL),
            "stream_options": _nullable(_obj({"include_usage": _nullable(BOOL)})),
            "tools": _nullable({"type": "array", "items": _ref("ChatTool")}),
            "tool_choice": _nullable({"anyOf": [
                {"enum": ["auto", "none", "required"]},
                _obj({"type": {"const": "function"}, "function": _obj({"name": STRING}, ("name",))},
                     ("type", "function")),
            ]}),
            "parallel_tool_calls": _nullable(BOOL),
            "user": _nullable(STRING),
        },
    },
    "ChatCompletion": _obj({
        "id": STRING,
        "object": {"const": "chat.completion"},
        "created": INT,
        "model": {"type": "string", "description": "the model that really answered"},
        "choices": {"type": "array", "minItems": 1, "maxItems": 1, "items": _obj({
            "index": INT,
            "message": _obj({"role": {"const": "assistant"}, "content": _nullable(STRING),
                             "refusal": {"type": "null"},
                             "tool_calls": {"type": "array", "items": _TOOL_CALL}}, ("role", "content")),
            "logprobs": {"type": "null"},
            "finish_reason": {"enum": ["stop", "length", "tool_calls", "content_filter"]},
        }, ("index", "message", "finish_reason"))},
        "usage": _obj({"prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT,
                       "prompt_tokens_details": _obj({"cached_tokens": INT})},
                      ("prompt_tokens", "completion_tokens", "total_tokens")),
    }, ("id", "object", "created", "model", "choices", "usage")),
    "ChatCompletionChunk": _obj({
        "id": STRING,
        "object": {"const": "chat.completion.chunk"},
        "created": INT,
        "model": STRING,
        "choices": {"type": "array", "maxItems": 1, "items": _obj({
            "index": INT,
            "delta": _obj({"role": {"const": "assistant"}, "content": STRING,
                           "tool_calls": {"type": "array", "items": _obj({"index": INT, **_TOOL_CALL["properties"]},
                                                                         ("index",))}}),
            "finish_reason": _nullable({"enum": ["stop", "length", "tool_calls", "content_filter"]}),
        }, ("index", "delta"))},
        "usage": _obj({"prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT}),
    }, ("id", "object", "created", "model", "choices")),
    "ChatCompletionEvent": _obj({
        "event": {"const": "message"},
        "data": {"anyOf": [
            {"const": "[DONE]"},
            {"type": "string", "contentMediaType": JSON,
             "contentSchema": {"anyOf": [_ref("ChatCompletionChunk"), _ref("OpenAIError")]}},
        ]},
    }, ("data",)),
    "OpenAIError": _obj({"error": _obj({
        "message": STRING,
        "type": {"type": "string", "examples": ["invalid_request_error", "requests", "server_error"]},
        "param": _nullable(STRING),
        "code": _nullable(STRING),
    }, ("message", "type"))}, ("error",)),
}

# --------------------------------------------------------------------------- Anthropic Messages

_CACHE = {"cache_control": _nullable(ANY_OBJECT)}
_A_TEXT: Schema = _obj({"type": {"const": "text"}, "text": STRING, **_CACHE}, ("type", "text"))
_A_SOURCE: Schema = {"anyOf": [
    _obj({"type": {"const": "base64"}, "media_type": STRING, "data": STRING}, ("type", "media_type", "data")),
    _obj({"type": {"const": "url"}, "url": STRING}, ("type", "url")),
]}
_A_IMAGE: Schema = _obj({"type": {"const": "image"}, "source": _A_SOURCE, **_CACHE}, ("type", "source"))
_A_DOCUMENT: Schema = _obj({"type": {"const": "document"}, "source": {"anyOf": [
    _A_SOURCE, _obj({"type": {"const": "text"}, "data": STRING}, ("type", "data"))]}, **_CACHE},
    ("type", "source"))
_A_TOOL_USE: Schema = _obj({"type": {"const": "tool_use"}, "id": STRING, "name": STRING, "input": ANY_OBJECT,
                            **_CACHE}, ("type", "id", "name"))
_A_TOOL_RESULT: Schema = _obj({
    "type": {"const": "tool_result"}, "tool_use_id": STRING,
    "content": _nullable({"anyOf": [STRING, {"type": "array", "items": {"anyOf": [_A_TEXT, _A_IMAGE, _A_DOCUMENT]}}]}),
    "is_error": _nullable(BOOL), **_CACHE,
}, ("type", "tool_use_id"))
_A_THINKING: Schema = _obj({"type": {"const": "thinking"}, "thinking": STRING, "signature": _nullable(STRING)},
                           ("type", "thinking"))
_A_REDACTED: Schema = _obj({"type": {"const": "redacted_thinking"}, "data": STRING}, ("type", "data"))
_A_BLOCK: Schema = {"anyOf": [_A_TEXT, _A_IMAGE, _A_DOCUMENT, _A_TOOL_USE, _A_TOOL_RESULT, _A_THINKING,
                              _A_REDACTED]}
_ERROR_TYPES = ["invalid_request_error", "authentication_error", "permission_error", "not_found_error",
                "request_too_large", "rate_limit_error", "api_error", "overloaded_error", "timeout_error"]
_EVENTS = ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
           "message_stop", "ping", "error"]
_STOP_REASONS = ["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]


def _messages_request(description: str, required: tuple[str, ...]) -> Schema:
    return {
        "type": "object",
        "description": description,
        "required": list(required),
        "properties": {
            "model": {"type": "string", "minLength": 1, "description": "a route name, or provider/model",
                      "examples": ["claude-opus-4-6", "to-openai"]},
            "max_tokens": POSITIVE,
            "messages": {"type": "array", "minItems": 1, "items": _ref("Message")},
            "system": _nullable({"anyOf": [STRING, {"type": "array", "items": _A_TEXT}]}),
            "tools": _nullable({"type": "array", "items": _ref("Tool")}),
            "tool_choice": _nullable(_ref("ToolChoice")),
            "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
            "top_p": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
            "top_k": _nullable({"type": "integer", "minimum": 0}),
            "stop_sequences": _nullable({"type": "array", "items": STRING}),
            "stream": _nullable(BOOL),
            "metadata": _nullable(_obj({"user_id": _nullable(STRING)})),
            "thinking": _nullable({"anyOf": [
                _obj({"type": {"const": "enabled"}, "budget_tokens": POSITIVE}, ("type", "budget_tokens")),
                _obj({"type": {"enum": ["adaptive", "disabled"]}}, ("type",)),
            ]}),
        },
    }


ANTHROPIC_SCHEMAS: dict[str, Schema] = {
    "Message": {"anyOf": [
        _obj({"role": {"enum": ["user", "assistant"]},
              "content": {"anyOf": [STRING, {"type": "array", "items": _A_BLOCK}]}}, ("role", "content")),
        _obj({"role": {"const": "system"}, "content": {"anyOf": [STRING, {"type": "array", "items": _A_TEXT}]}},
             ("role", "content")),
    ]},
    "Tool": {"anyOf": [
        _obj({"type": _nullable({"const": "custom"}), "name": STRING, "description": _nullable(STRING),
              "input_schema": {"type": "object", "description": "a JSON Schema"}, **_CACHE},
             ("name", "input_schema")),
        _obj({"type": {"type": "string", "not": {"const": "custom"},
                       "description": "a server tool (web_search_..., bash_...): passed on as sent"}},
             ("type",)),
    ]},
    "ToolChoice": {"anyOf": [
        _obj({"type": {"enum": ["auto", "any", "none"]}, "disable_parallel_tool_use": _nullable(BOOL)}, ("type",)),
        _obj({"type": {"const": "tool"}, "name": STRING, "disable_parallel_tool_use": _nullable(BOOL)},
             ("type", "name")),
    ]},
    "MessagesRequest": _messages_request(
        "Anthropic Messages. Fields outlast does not model (output_config, service_tier, container, ...) "
        "are passed on to Anthropic-family providers.", ("model", "max_tokens", "messages")),
    "CountTokensRequest": _messages_request("A Messages request without max_tokens.", ("model", "messages")),
    "MessagesResponse": _obj({
        "id": STRING,
        "type": {"const": "message"},
        "role": {"const": "assistant"},
        "model": {"type": "string", "description": "the model that really answered"},
        "content": {"type": "array", "items": {"anyOf": [
            _obj({"type": {"const": "text"}, "text": STRING}, ("type", "text")),
            _obj({"type": {"const": "tool_use"}, "id": STRING, "name": STRING, "input": ANY_OBJECT},
                 ("type", "id", "name", "input")),
            _obj({"type": {"const": "thinking"}, "thinking": STRING, "signature": STRING},
                 ("type", "thinking", "signature")),
            _A_REDACTED,
        ]}},
        "stop_reason": _nullable({"enum": _STOP_REASONS}),
        "stop_sequence": _nullable(STRING),
        "usage": _obj({"input_tokens": INT, "output_tokens": INT, "cache_creation_input_tokens": INT,
                       "cache_read_input_tokens": INT}, ("input_tokens", "output_tokens")),
    }, ("id", "type", "role", "model", "content", "stop_reason", "usage")),
    "MessagesEvent": _obj({
        "event": {"enum": _EVENTS},
        "data": {"type": "string", "contentMediaType": JSON,
                 "contentSchema": _obj({"type": {"enum": _EVENTS}}, ("type",))},
    }, ("event", "data")),
    "TokenCount": _obj({"input_tokens": INT}, ("input_tokens",)),
    "AnthropicError": _obj({"type": {"const": "error"},
                            "error": _obj({"type": {"enum": _ERROR_TYPES}, "message": STRING}, ("type", "message"))},
                           ("type", "error")),
}

# --------------------------------------------------------------------------- outlast's own

_INCIDENT_STATUS = {"enum": ["investigating", "identified", "monitoring", "resolved"]}
_NUMBER_OR_NULL = _nullable(NUMBER)

OUTLAST_SCHEMAS: dict[str, Schema] = {
    "OutlastError": _obj({"error": STRING}, ("error",)),
    "ModelList": _obj({
        "object": {"const": "list"},
        "data": {"type": "array", "items": _obj({
            "id": STRING, "object": {"const": "model"}, "type": {"const": "model"}, "created": INT,
            "owned_by": STRING, "display_name": STRING, "created_at": STRING,
        }, ("id", "object", "type", "created", "owned_by", "display_name", "created_at"))},
        "has_more": BOOL,
        "first_id": _nullable(STRING),
        "last_id": _nullable(STRING),
    }, ("object", "data", "has_more", "first_id", "last_id")),
    "Healthz": _obj({
        "status": {"const": "ok"}, "version": STRING, "uptime_seconds": NUMBER,
        "providers": {"type": "object", "additionalProperties": _obj({"kind": STRING}, ("kind",))},
        "routes": {"type": "array", "items": STRING},
        "health": _obj({"targets": ANY_OBJECT, "providers": ANY_OBJECT}),
    }, ("status", "version", "uptime_seconds", "providers", "routes", "health")),
    "Incident": _obj({
        "id": STRING, "provider": STRING, "title": STRING, "status": _INCIDENT_STATUS,
        "cause": {"type": "string", "description": "the failure class: overloaded, server_error, rate_limited, ..."},
        "cause_text": STRING,
        "impact": {"type": "string", "examples": ["minor", "major"]},
        "started_at": NUMBER, "opened_at": NUMBER,
        "components": {"type": "array", "items": STRING},
        "updates": {"type": "array", "items": _obj({"at": NUMBER, "status": _INCIDENT_STATUS, "body": STRING},
                                                   ("at", "status", "body"))},
        "identified_at": _NUMBER_OR_NULL, "monitoring_at": _NUMBER_OR_NULL, "resolved_at": _NUMBER_OR_NULL,
        "vendor_ack_at": _NUMBER_OR_NULL, "vendor_incident": _nullable(ANY_OBJECT), "evidence": ANY_OBJECT,
        "requests_affected": INT, "failed_over": INT, "failed": INT,
        "detection_lag": NUMBER, "ack_lag": _NUMBER_OR_NULL,
    }, ("id", "provider", "title", "status", "cause", "impact", "started_at", "opened_at", "components",
        "updates")),
    "Live": _obj({
        "time": NUMBER,
        "live": _obj({"requests_per_minute": NUMBER, "error_rate": NUMBER, "failovers": INT,
                      "failovers_last_minute": INT, "requests_total": INT, "failed_total": INT},
                     ("requests_per_minute", "error_rate", "failovers", "requests_total", "failed_total")),
        "status": _obj({"id": STRING, "indicator": {"enum": ["none", "minor", "major", "critical"]},
                        "description": STRING}, ("indicator", "description")),
        "components": {"type": "array", "items": _obj({"component": STRING, "provider": STRING,
                                                       "status": STRING}, ("component", "status"))},
        "feeds": {"type": "array", "items": _obj({"provider": STRING, "url": STRING, "state": STRING},
                                                 ("provider", "url"))},
        "incidents": {"type": "array", "items": _obj({"id": STRING, "title": STRING, "status": _INCIDENT_STATUS,
                                                      "cause": STRING, "opened_at": NUMBER},
                                                     ("id", "title", "status"))},
    }, ("time", "live", "status", "components", "feeds", "incidents")),
    "Usage": _obj({
        "since": NUMBER, "until": _NUMBER_OR_NULL,
        "teams": {"type": "array", "items": _obj({
            "team": STRING, "requests": INT, "input_tokens": INT, "output_tokens": INT, "errors": INT,
            "models": {"type": "object", "additionalProperties": INT},
            "data_classes": {"type": "object", "additionalProperties": INT},
        }, ("team", "requests", "input_tokens", "output_tokens", "errors", "models", "data_classes"))},
        "usage": {"type": "array", "items": _obj({
            "team": STRING, "provider": STRING, "model": STRING, "data_class": STRING, "requests": INT,
            "input_tokens": INT, "output_tokens": INT, "errors": INT,
        }, ("team", "provider", "model", "data_class", "requests", "input_tokens", "output_tokens", "errors"))},
    }, ("since", "until", "teams", "usage")),
    "ReportRequest": _obj({
        "component": {"type": "string", "description": "a provider or provider/model the gateway knows",
                      "examples": ["anthropic", "openai/gpt-5.1"]},
        "note": _nullable(STRING),
    }, ("component",)),
    "Report": _obj({"component": STRING, "at": NUMBER, "note": STRING, "reports_in_window": INT},
                   ("component", "at", "note", "reports_in_window")),
    "ReportList": _obj({"reports": {"type": "array", "items": _obj({"at": NUMBER, "component": STRING,
                                                                    "note": STRING},
                                                                   ("at", "component", "note"))}},
                       ("reports",)),
}

# --------------------------------------------------------------------------- headers and responses

_OUTLAST_HEADERS: dict[str, Any] = {
    "x-outlast-exchange-id": {"description": "this exchange's id", "schema": STRING},
    "x-outlast-served-by": {"description": "the provider/model that really answered", "schema": STRING},
    "x-outlast-fallback": {"description": "true when that was not the first choice",
                           "schema": {"enum": ["true", "false"]}},
    "x-outlast-attempts": {"description": "how many candidates were tried", "schema": {"type": "string",
                                                                                        "pattern": "^[0-9]+$"}},
    "x-outlast-conversation-id": {"description": "the stored conversation this exchange joined", "schema": STRING},
}
_RETRY_AFTER = {"retry-after": {"description": "seconds to wait before retrying",
                                "schema": {"type": "string", "pattern": "^[0-9]+$"}}}


def _errors(schema: str, statuses: dict[str, str], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {status: _json(_ref(schema), why, headers) for status, why in statuses.items()}


_COMMON = {"401": "missing or invalid key", "413": "the body is larger than max_body_bytes",
           "431": "the request headers are larger than governance.max_header_bytes"}
_PROXY_ERRORS = {
    "400": "the request is malformed (the message names the field), or a provider rejected it",
    "401": "missing or invalid key",
    "403": "no provider approved for this request's data class, or the key may not use this route",
    "404": "the model is not routed by this gateway (the message lists the routes)",
    "413": "the body is larger than max_body_bytes",
    "429": "rate limited: the key's limit, or every candidate was rate limited",
}


def _proxy_operation(summary: str, request: str, answer: str, event: str, error: str,
                     unavailable: str) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "the answer, as JSON, or as server-sent events when the request set stream "
                               "(where an answer continued on another target is announced in an SSE comment)",
                "headers": _OUTLAST_HEADERS,
                "content": {JSON: {"schema": _ref(answer)}, "text/event-stream": {"schema": _ref(event)}}},
        **_errors(error, _PROXY_ERRORS, {**_OUTLAST_HEADERS, **_RETRY_AFTER}),
        unavailable: _json(_ref(error), "no candidate could answer; the message lists every attempt and why it "
                                        "failed", {**_OUTLAST_HEADERS, **_RETRY_AFTER}),
    }
    return {"post": {
        "summary": summary,
        "tags": ["proxy"],
        "parameters": _REQUEST_HEADERS,
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref(request)}}},
        "responses": responses,
    }}


_REQUEST_HEADERS = [
    {"name": "x-outlast-conversation-id", "in": "header", "required": False, "schema": STRING,
     "description": "continue this stored conversation (docs/memory.md)"},
    {"name": "x-outlast-no-downgrade", "in": "header", "required": False, "schema": STRING,
     "description": "true, 1 or yes: never fail over to a lower tier of the route (any other value: allowed)"},
]
_ANTHROPIC_HEADERS = [
    {"name": "anthropic-version", "in": "header", "required": False, "schema": STRING,
     "description": "passed on to Anthropic-family providers", "examples": {"current": {"value": "2023-06-01"}}},
    {"name": "anthropic-beta", "in": "header", "required": False, "schema": STRING,
     "description": "passed on to Anthropic-family providers"},
]


def _get(summary: str, tag: str, response: Schema, description: str, errors: dict[str, Any],
         *, public: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag],
                                 "responses": {"200": _json(response, description), **errors}}
    if public:
        operation["security"] = []
    return {"get": operation}


def _paths() -> dict[str, Any]:
    chat = _proxy_operation("OpenAI Chat Completions", "ChatCompletionRequest", "ChatCompletion",
                            "ChatCompletionEvent", "OpenAIError", "503")
    messages = _proxy_operation("Anthropic Messages", "MessagesRequest", "MessagesResponse",
                                "MessagesEvent", "AnthropicError", "529")
    messages["post"]["parameters"] = [*_REQUEST_HEADERS, *_ANTHROPIC_HEADERS]
    messages["post"]["parameters"].append(
        {"name": "beta", "in": "query", "required": False, "schema": STRING,
         "description": "accepted and ignored (the Anthropic SDK sends beta=true)"})
    outlast_errors = _errors("OutlastError", {"401": "missing or invalid key"})
    return {
        "/v1/chat/completions": chat,
        "/v1/messages": messages,
        "/v1/messages/count_tokens": {"post": {
            "summary": "Count a Messages request's input tokens",
            "description": "Exact from the first candidate that can count (Anthropic), approximate otherwise; "
                           "x-outlast-token-count says which.",
            "tags": ["proxy"],
            "parameters": _ANTHROPIC_HEADERS,
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("CountTokensRequest")}}},
            "responses": {
                "200": _json(_ref("TokenCount"), "the count", {
                    "x-outlast-token-count": {"schema": {"enum": ["exact", "approximate"]}, "required": True},
                    "x-outlast-served-by": {"schema": STRING}}),
                **_errors("AnthropicError", {k: v for k, v in _PROXY_ERRORS.items() if k != "429"}),
            },
        }},
        "/v1/models": _get("The route names, in a shape both SDKs accept", "proxy", _ref("ModelList"),
                           "the models", {
                               "401": {"description": "missing or invalid key, in OpenAI's shape (Anthropic's "
                                                      "when the request carries anthropic-version)",
                                       "content": {JSON: {"schema": {"anyOf": [_ref("OpenAIError"),
                                                                               _ref("AnthropicError")]}}}},
                           }),
        "/healthz": _get("Liveness, the configured providers and routes, and the targets' health", "gateway",
                         _ref("Healthz"), "the gateway is up", {}, public=True),
        "/openapi.json": _get("This document", "gateway", {"type": "object"}, "the OpenAPI document", {},
                              public=True),
        "/outlast/v1/health": _get("Live traffic numbers, components, feeds and incidents", "health",
                                   _ref("Live"), "the live view", outlast_errors),
        "/outlast/v1/incidents": _get("Every incident, newest first", "health",
                                      _obj({"incidents": {"type": "array", "items": _ref("Incident")}},
                                           ("incidents",)), "the incidents", outlast_errors),
        "/outlast/v1/incidents/{incident_id}": {
            "parameters": [{"name": "incident_id", "in": "path", "required": True, "schema": STRING}],
            **_get("One incident", "health", _ref("Incident"), "the incident",
                   {**outlast_errors, **_errors("OutlastError", {"404": "no such incident"})}),
        },
        "/outlast/v1/usage": {"get": {
            "summary": "Which teams use which providers and models (the inventory); needs the master key",
            "tags": ["governance"],
            "parameters": [{"name": name, "in": "query", "required": False, "schema": STRING,
                            "description": f"{what}: epoch seconds, an ISO 8601 date or time, or an age "
                                           "(12h, 7d)", "examples": {"age": {"value": example}}}
                           for name, what, example in (("since", "from (default 30d)", "7d"),
                                                       ("until", "to (default now)", "1h"))],
            "responses": {
                "200": _json(_ref("Usage"), "the inventory"),
                **_errors("OutlastError", {"400": "since or until is not a time", "401": "missing or invalid key",
                                           "503": "the store cannot be read"}),
            },
        }},
        "/outlast/v1/reports": {
            **_get("The latest user problem reports", "health", _ref("ReportList"), "the reports", outlast_errors),
            "post": {
                "summary": "Report a problem with a provider or model",
                "tags": ["health"],
                "parameters": [{"name": "x-outlast-reporter", "in": "header", "required": False, "schema": STRING,
                                "description": "who reports (counted once per reporter)"}],
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("ReportRequest")}}},
                "responses": {
                    "201": _json(_ref("Report"), "the report was filed"),
                    **_errors("OutlastError", {"400": "not a report, or an unknown component",
                                               "401": "missing or invalid key", "413": "a report is at most 64 KiB"}),
                },
            },
        },
    }


def _for_gateway(schemas: dict[str, Schema], providers: Sequence[str], routes: Sequence[str]) -> None:
    """What only this gateway's configuration says: the providers a report may name, and its
    route names as examples of ``model``."""
    if providers:
        names = "|".join(re.escape(p) for p in providers)
        # The gateway strips the component, then wants a provider, or provider/model.
        component = {**schemas["ReportRequest"]["properties"]["component"],
                     "pattern": rf"^\s*(?:{names})(?:/[\s\S]*)?\s*$"}
        schemas["ReportRequest"] = {**schemas["ReportRequest"],
                                    "properties": {**schemas["ReportRequest"]["properties"], "component": component}}
    if routes:
        for name in ("ChatCompletionRequest", "MessagesRequest", "CountTokensRequest"):
            model = {**schemas[name]["properties"]["model"], "examples": list(routes[:5])}
            schemas[name] = {**schemas[name], "properties": {**schemas[name]["properties"], "model": model}}


def document(providers: Sequence[str] = (), routes: Sequence[str] = ()) -> dict[str, Any]:
    """The whole OpenAPI document, as a fresh dict; with ``providers`` and ``routes``, for a
    gateway with that configuration."""
    schemas = {**OPENAI_SCHEMAS, **ANTHROPIC_SCHEMAS, **OUTLAST_SCHEMAS}
    _for_gateway(schemas, providers, routes)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "outlast",
            "version": __version__,
            "summary": "Self-hosted AI continuity gateway",
            "description": "The OpenAI Chat Completions and Anthropic Messages dialects, served with failover "
                           "across providers, and outlast's own API. Errors come back in the caller's dialect. "
                           "Every endpoint but /healthz, /metrics and /openapi.json needs the master key (or a "
                           "virtual key) as `x-api-key` or `Authorization: Bearer` when one is configured. The server "
                           "refuses request headers over governance.max_header_bytes with 431 and clients "
                           "too slow to send their request with 408 (docs/configuration.md, Limits).",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [{"name": "proxy", "description": "the model endpoints, in each vendor's dialect"},
                 {"name": "health", "description": "outage detection: live view, incidents, user reports"},
                 {"name": "governance", "description": "the usage inventory"},
                 {"name": "gateway", "description": "the gateway itself"}],
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                           "description": "the master key or a virtual key (Anthropic SDK style)"},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "the master key or a virtual key (OpenAI SDK style)"},
            },
            "schemas": schemas,
        },
    }


def render(providers: Sequence[str] = (), routes: Sequence[str] = ()) -> bytes:
    """The document as JSON bytes (the gateway renders it once, at start)."""
    return orjson.dumps(document(providers, routes))
