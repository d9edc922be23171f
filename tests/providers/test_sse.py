from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from outlast.providers.sse import SSEBuffer, SSEDecoder, SSEEvent, comment, encode

STREAM = (
    b"event: message_start\ndata: {\"a\": 1}\n\n"
    b": a comment\n\n"
    b"data: first line\ndata: second line\n\n"
    b"event: ping\ndata: {}\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent("message_start", '{"a": 1}'),
    SSEEvent(None, "first line\nsecond line"),
    SSEEvent("ping", "{}"),
    SSEEvent(None, "[DONE]"),
]


def feed_in_pieces(data: bytes, cuts: list[int]) -> list[SSEEvent]:
    buffer = SSEBuffer()
    events: list[SSEEvent] = []
    previous = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        events += buffer.feed(data[previous:cut])
        previous = cut
    tail = buffer.flush()
    return events + ([tail] if tail else [])


def test_whole_stream_in_one_chunk() -> None:
    assert SSEBuffer().feed(STREAM) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    assert feed_in_pieces(STREAM, cuts) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM) * 2), max_size=12))
def test_crlf_line_endings_split_anywhere(cuts: list[int]) -> None:
    assert feed_in_pieces(STREAM.replace(b"\n", b"\r\n"), cuts) == EXPECTED


def test_last_event_without_blank_line_is_flushed() -> None:
    buffer = SSEBuffer()
    assert buffer.feed(b"data: {\"x\": 1}\n\ndata: tail") == [SSEEvent(None, '{"x": 1}')]
    assert buffer.flush() == SSEEvent(None, "tail")
    assert buffer.flush() is None


def test_line_decoder_agrees_with_the_byte_buffer() -> None:
    decoder = SSEDecoder()
    events = [e for line in STREAM.decode().split("\n") if (e := decoder.feed(line)) is not None]
    assert events == EXPECTED


def test_encode_and_comment_frames() -> None:
    assert encode(b'{"a":1}', "message_stop") == b'event: message_stop\ndata: {"a":1}\n\n'
    assert SSEBuffer().feed(encode("x") + comment("hello\nworld") + encode("y")) == [
        SSEEvent(None, "x"), SSEEvent(None, "y")]


LINES = st.lists(st.sampled_from(["data: x", 'data: {"k": "é…"}', "data:y", "event: e", ": note", "", "", "id: 7"]),
                 max_size=24)


@given(LINES, st.lists(st.integers(min_value=0, max_value=600), max_size=8))
def test_the_byte_buffer_agrees_with_the_line_decoder(lines: list[str], cuts: list[int]) -> None:
    """Any stream of lines (runs of blank lines, multi-line data, multi-byte characters), cut anywhere:
    the byte buffer's frames give exactly the events the WHATWG line decoder gives."""
    stream = ("\n".join(lines) + "\n").encode()
    decoder = SSEDecoder()
    expected = [event for line in lines if (event := decoder.feed(line)) is not None]
    if (tail := decoder.flush()) is not None:
        expected.append(tail)
    assert feed_in_pieces(stream, [cut % (len(stream) + 1) for cut in cuts]) == expected


def test_a_run_of_blank_lines_loses_no_event() -> None:
    assert SSEBuffer().feed(b"data: a\n\n\n\ndata: b\n\n\n") == [SSEEvent(None, "a"), SSEEvent(None, "b")]
    buffer = SSEBuffer()
    assert buffer.feed(b"data: a\n\n\n") == [SSEEvent(None, "a")]
    assert buffer.feed(b"data: b\n") == []
    assert buffer.feed(b"\n") == [SSEEvent(None, "b")]
