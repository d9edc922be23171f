"""Wire dialects: pure functions between a wire format and the canonical model.

Every wire family (``openai_chat``, ``anthropic_messages``, ``gemini``) is one module (or package)
with the same face. None of them does I/O or reads configuration; the gateway's
endpoints (inbound) and the provider adapters (outbound) share them.

Inbound, for a family callers speak::

    parse_request(body: object, headers: Mapping[str, str] | None = None) -> Request
        # raises RequestError(400, "<what is wrong, naming the field>", param=...)
    render_response(response: Response, *, message_id: str) -> dict
    StreamRenderer(*, message_id: str, ...)      # .render(event) -> bytes, .error(...) -> bytes
    error_body(status: int, kind: str, message: str, param=None, code=None) -> dict

Outbound, for a family providers speak::

    render_request(request: Request, model: str, *, stream: bool) -> dict
    parse_response(body: object) -> Response     # raises UpstreamError(MALFORMED) on a bad shape
    StreamParser()                               # .feed(event_name, data) -> list[Event]; .finish()
    classify_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError
"""
