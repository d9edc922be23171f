"""OpenAI Chat Completions ⇄ canonical, both directions. Pure functions: no I/O, no config.

Inbound (callers using the openai SDK): :func:`parse_request`, :func:`render_response`,
:class:`StreamRenderer`, :func:`error_body`. Outbound (OpenAI and every OpenAI-compatible
server: Ollama, vLLM, llama.cpp, Groq, ...): :func:`render_request`, :func:`parse_response`,
:class:`StreamParser`, :func:`classify_error`.

Conventions (shared with the Anthropic family, so a request can cross families):

- Leading ``system``/``developer`` messages become ``Request.system`` (one :class:`Text` per
  message or text part); one later in the conversation is kept in place as
  ``Message(role="system")``. Outbound, ``Request.system`` is joined into ONE system message
  (several confuse local chat templates).
- Tool results live in user messages, as in Anthropic's format: a run of ``tool`` messages
  becomes one ``user`` message of :class:`ToolResult` parts, and a ``user`` message directly
  after the run joins that same message. Outbound, a user message is split again: one
  ``tool`` message per result (its text joined), then a user message with the other parts
  (images inside a tool result move there, since tool messages carry only text).
  ``is_error`` has no Chat Completions field and is dropped.
- Tool-call arguments are parsed JSON; arguments that are not valid JSON are kept losslessly
  as ``{"_raw": text}`` and sent back verbatim (:data:`RAW_ARGUMENTS`).
- ``user`` becomes ``Request.metadata["user_id"]``, and a ``user_id`` of at most 64
  characters is sent back as ``user`` (longer ids, such as Claude Code's JSON document, are
  not: OpenAI limits end-user ids). OpenAI's own ``metadata`` needs ``store`` and goes to
  ``extra["openai"]`` with it.
- Fields the canonical form does not model (``seed``, ``response_format``, ``logprobs``,
  ``stream_options``, ``reasoning_effort``, ``service_tier``, ``store``, ...) go to
  ``Request.extra["openai"]``; only an OpenAI-family provider sends them on. ``n`` other
  than 1 is rejected: one answer is all a failover gateway can continue.
- Usage: OpenAI's ``prompt_tokens`` includes cached tokens, canonical ``input_tokens`` does
  not (Anthropic's meaning): ``input_tokens = prompt_tokens - cached_tokens``.
- Thinking: Chat Completions has no standard field, so :class:`ThinkingDelta` and
  :class:`Thinking` are not rendered to callers and are dropped outbound. Inbound from
  upstreams, the de-facto ``reasoning_content`` (vLLM, DeepSeek) and ``reasoning``
  (Ollama) fields are read as thinking.
- ``top_k`` is read from callers (vLLM's extension) but never sent: OpenAI rejects it.

Layout: ``_request`` parses inbound requests, ``_render`` renders outbound ones,
``_response`` holds whole responses (both directions) with the finish-reason, usage and
tool-argument vocabulary, ``_stream`` the SSE renderer and parser, ``_errors`` error
documents and their classification. Import from this package, not from those modules.
"""

from outlast.dialects.openai_chat._errors import classify_error, error_body
from outlast.dialects.openai_chat._render import render_request
from outlast.dialects.openai_chat._request import parse_request
from outlast.dialects.openai_chat._response import RAW_ARGUMENTS, parse_response, render_response
from outlast.dialects.openai_chat._stream import StreamParser, StreamRenderer

__all__ = [
    "RAW_ARGUMENTS",
    "StreamParser",
    "StreamRenderer",
    "classify_error",
    "error_body",
    "parse_request",
    "parse_response",
    "render_request",
    "render_response",
]
