from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from outlast.dialects.canonical import (
    Event,
    Response,
    Start,
    Stop,
    StopReason,
    Text,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolUse,
    Usage,
    coalesce,
    collect,
    events_of,
)

# A block index holds one kind of block: text blocks at even indices, reasoning at odd ones.
deltas = st.one_of(
    st.builds(TextDelta, st.sampled_from([0, 2]), st.text(max_size=5)),
    st.builds(ThinkingDelta, st.sampled_from([1, 3]), st.text(max_size=5),
              st.one_of(st.none(), st.text(min_size=1, max_size=3))),
)


@given(st.lists(deltas, max_size=30))
def test_coalescing_never_changes_the_collected_answer(middle: list[Event]) -> None:
    events: list[Event] = [Start("m1", "x", Usage(3)), *middle, Stop(StopReason.END_TURN, Usage(0, 4))]
    assert collect(coalesce(events)) == collect(events)
    assert len(coalesce(events)) <= len(events)


def test_adjacent_text_of_one_block_is_joined_but_not_across_blocks() -> None:
    events: list[Event] = [TextDelta(0, "a"), TextDelta(0, "b"), ToolCall(1, "t", "f", "{}"), TextDelta(2, "c"),
                           TextDelta(3, "d")]
    assert coalesce(events) == [TextDelta(0, "ab"), ToolCall(1, "t", "f", "{}"), TextDelta(2, "c"), TextDelta(3, "d")]


def test_a_signed_thinking_delta_closes_the_run() -> None:
    events: list[Event] = [ThinkingDelta(0, "a"), ThinkingDelta(0, "", signature="sig"), ThinkingDelta(0, "b")]
    assert coalesce(events) == [ThinkingDelta(0, "a", "sig"), ThinkingDelta(0, "b")]


def test_events_of_is_the_inverse_of_collect() -> None:
    response = Response("m1", "gpt-5.1", (Text("hello"), ToolUse("call_1", "f", {"x": 1})),
                        StopReason.TOOL_USE, None, Usage(5, 7))
    assert collect(events_of(response)) == response


def test_collect_needs_a_start() -> None:
    try:
        collect([TextDelta(0, "orphan")])
    except ValueError as error:
        assert "start" in str(error)
    else:
        raise AssertionError("collect accepted a stream without a start")
