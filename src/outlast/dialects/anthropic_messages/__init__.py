"""Anthropic Messages (``POST /v1/messages``): wire dicts and SSE <-> the canonical model.

Pure functions, no I/O, no configuration. The gateway's ``/v1/messages`` endpoint uses
the inbound half (``parse_request``, ``render_response``, ``StreamRenderer``,
``error_body``); :class:`outlast.providers.anthropic.AnthropicProvider` uses the
outbound half (``render_request``, ``parse_response``, ``StreamParser``,
``classify_error``).

Conventions this family chose (the canonical model does not say):

- **Unknown top-level fields** (``output_config``, ``context_management``,
  ``service_tier``, ``container``, ``mcp_servers``, ...) go to
  ``Request.extra["anthropic"]`` untouched and are sent on by ``render_request``;
  they never override a field the canonical form carries. Tools with a ``type``
  other than ``custom`` (Anthropic's server tools: ``web_search_...``,
  ``bash_...``) have no canonical form either: they travel in
  ``extra["anthropic"]["tools"]`` and ``render_request`` appends them to the tools.
- **Headers:** only ``anthropic-version`` and ``anthropic-beta`` are kept, lower-cased.
- **Documents:** a ``document`` block with a PDF source (base64 or url) becomes an
  :class:`Image` part whose ``media_type`` is ``application/pdf``; ``render_request``
  turns such a part back into a ``document`` block. A plain-text document becomes
  :class:`Text`.
- **Mid-conversation system messages** (``role: "system"`` inside ``messages``,
  Claude Code's ``mid-conversation-system`` beta) are parsed to
  ``Message(role="system")``. ``render_request`` keeps them only when the request's
  ``anthropic-beta`` header names ``mid-conversation-system``; otherwise their text
  is folded into the neighbouring user turn, wrapped in ``<system-reminder>`` tags
  (the form Claude Code itself uses for context in user turns): appended to the
  user message before it, or else placed after the tool results of the user
  message after it, or else sent as a user message of its own. Appending keeps
  ``tool_result`` blocks first in their turn, as the API requires.
- **Outbound clean-ups** the API would otherwise reject: ``max_tokens`` defaults to
  4096 (raised above an enabled thinking budget), ``temperature`` is clamped to
  [0, 1] (OpenAI callers may send up to 2), thinking blocks without a signature
  (reasoning another vendor produced) and empty text blocks are dropped,
  ``metadata`` carries only a string ``user_id``, and an inline image without a
  media type gets one sniffed from its first bytes.
- **Stop reasons:** Anthropic's names are the canonical ones; ``refusal`` is
  ``CONTENT_FILTER`` and back, ``model_context_window_exceeded`` is ``MAX_TOKENS``.
- **Signatures:** an empty ``signature`` is no signature (``None``); the renderer
  sends ``""`` for thinking that has none, since the SDKs require the field.

Layout: ``_request`` parses inbound requests, ``_render`` renders outbound ones,
``_response`` holds whole responses (both directions) with the usage and stop-reason
vocabulary, ``_stream`` the SSE renderer and parser, ``_errors`` error documents and
their classification. Import from this package, not from those modules.
"""

from outlast.dialects.anthropic_messages._errors import classify_error, error_body
from outlast.dialects.anthropic_messages._render import DEFAULT_MAX_TOKENS, render_count_tokens_request, render_request
from outlast.dialects.anthropic_messages._request import PASSED_HEADERS as PASSED_HEADERS
from outlast.dialects.anthropic_messages._request import parse_request
from outlast.dialects.anthropic_messages._response import parse_response, render_response
from outlast.dialects.anthropic_messages._stream import StreamParser, StreamRenderer

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "StreamParser",
    "StreamRenderer",
    "classify_error",
    "error_body",
    "parse_request",
    "parse_response",
    "render_count_tokens_request",
    "render_request",
    "render_response",
]
