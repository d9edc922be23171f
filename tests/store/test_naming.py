"""Naming a conversation before the answer (``outlast.store.naming``), and the ingester threading
every exchange into exactly the conversation it was named for (real SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outlast.dialects.canonical import Image, Message, Part, Request, Text, Thinking, ToolResult, ToolUse
from outlast.routing.router import Exchange
from outlast.store.naming import ConversationNames
from outlast.store.recorder import Recorder
from outlast.store.records import answer_hash, message_hashes, prefix_hashes, tag_part
from outlast.store.sql import SqlStore
from outlast.store.threads import request_messages
from tests.store.helpers import assistant, make_exchange, user

# --------------------------------------------------------------------------- the same hashes as the ingester

_text = st.text(alphabet=st.sampled_from(" \n\tab€"), max_size=6)
_parts: st.SearchStrategy[Part] = st.one_of(
    st.builds(Text, _text, st.sampled_from([None, {"type": "ephemeral"}])),
    st.builds(Image, st.just("image/png"), st.sampled_from([None, "aGk="]), st.sampled_from([None, "http://x/i"])),
    st.builds(ToolUse, st.sampled_from(["t1", "t2"]), st.sampled_from(["Bash", "Read"]),
              st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3))),
    st.builds(ToolResult, st.sampled_from(["t1", "t2"]),
              st.lists(st.builds(Text, _text), max_size=2).map(tuple), st.booleans()),
    st.builds(Thinking, _text, st.sampled_from([None, "sig"]), st.sampled_from([None, "enc"])),
)
_messages = st.lists(st.builds(Message, st.sampled_from(["user", "assistant"]),
                               st.lists(_parts, max_size=3).map(tuple)), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(_messages, st.lists(_parts, min_size=1, max_size=3))
def test_the_gateway_hashes_requests_exactly_as_the_ingester_does(messages: list[Message],
                                                                  answer: list[Part]) -> None:
    """The gateway hashes canonical messages on the event loop; the ingester hashes the journaled
    JSON. A difference would name one conversation in the header and store into another."""
    request = Request("m", tuple(messages))
    journaled = request_messages(orjson.loads(orjson.dumps(request)))
    typed_answer = [tag_part(p) for p in orjson.loads(orjson.dumps(tuple(answer)))]
    stored = prefix_hashes([*journaled, ("assistant", typed_answer)])
    assert message_hashes(messages) == stored[:-1]
    assert answer_hash(stored[-2], answer) == stored[-1]
    assert answer_hash("", answer) == prefix_hashes([("assistant", typed_answer)])[0]


# --------------------------------------------------------------------------- through the recorder and the store


@pytest.fixture
async def recorder(store_url: str, tmp_path: Path) -> AsyncIterator[Recorder]:
    recorder = Recorder(SqlStore(store_url), tmp_path / "journal", ingest="thread")
    yield recorder
    await recorder.aclose()


async def answer(recorder: Recorder, messages: Sequence[Message], reply: str | None) -> Exchange:
    """What the gateway does: name the conversation before the answer, commit after it."""
    exchange = make_exchange(list(messages), reply)
    exchange.conversation_id = await recorder.conversation_for(exchange)
    await recorder.commit(exchange)
    return exchange


def stored_threads(store_url: str, exchanges: Sequence[Exchange]) -> dict[str, list[str]]:
    """Each exchange's conversation as stored ({exchange id: its conversation's message texts}),
    after checking the store put it where it was named."""
    store = SqlStore(store_url)
    try:
        threads: dict[str, list[str]] = {}
        for exchange in exchanges:
            row = store.get_exchange(exchange.id)
            assert row is not None
            assert row["conversation_id"] == exchange.conversation_id, "stored elsewhere than named"
            conversation = store.get_conversation(row["conversation_id"])
            assert conversation is not None
            threads[exchange.id] = [m.text for m in conversation.messages]
        return threads
    finally:
        store.close()


async def test_turns_of_one_conversation_are_named_alike_from_memory(recorder: Recorder, store_url: str) -> None:
    one = await answer(recorder, [user("plan the migration")], "Step 1.")
    two = await answer(recorder, [user("plan the migration"), assistant("Step 1."), user("and then?")], "Step 2.")
    three = await answer(recorder, [user("plan the migration"), assistant("Step 1."), user("and then?"),
                                    assistant("Step 2."), user("done?")], "Yes.")
    assert one.conversation_id is not None
    assert two.conversation_id == three.conversation_id == one.conversation_id
    assert recorder.names.lookups == 0  # found in memory: no database round-trip
    assert await recorder.flush()
    threads = stored_threads(store_url, [one, two, three])
    assert threads[three.id] == ["plan the migration", "Step 1.", "and then?", "Step 2.", "done?", "Yes."]


async def test_a_regenerated_answer_branches_into_a_new_conversation_as_stored(recorder: Recorder,
                                                                               store_url: str) -> None:
    history = [user("name a colour"), assistant("Red."), user("another")]
    one = await answer(recorder, history[:1], "Red.")
    two = await answer(recorder, history, "Blue.")
    again = await answer(recorder, history, "Green.")  # the client regenerated the last answer
    assert two.conversation_id == one.conversation_id
    assert again.conversation_id not in (None, one.conversation_id)
    assert recorder.names.lookups == 0
    assert await recorder.flush()
    threads = stored_threads(store_url, [one, two, again])
    assert threads[two.id] == ["name a colour", "Red.", "another", "Blue."]
    assert threads[again.id] == ["name a colour", "Red.", "another", "Green."]


async def test_two_continuations_in_flight_at_once_go_where_each_was_named(recorder: Recorder,
                                                                           store_url: str) -> None:
    one = await answer(recorder, [user("start")], "Started.")
    history = [user("start"), assistant("Started."), user("go on")]
    first, second = make_exchange(history, "First."), make_exchange(history, "Second.")
    first.conversation_id = await recorder.conversation_for(first)
    second.conversation_id = await recorder.conversation_for(second)  # while the first is answered
    assert first.conversation_id == one.conversation_id
    assert second.conversation_id not in (None, one.conversation_id)  # it branches off
    await recorder.commit(second)  # finishing in the other order changes nothing
    await recorder.commit(first)
    assert await recorder.flush()
    threads = stored_threads(store_url, [first, second])
    assert threads[first.id] == ["start", "Started.", "go on", "First."]
    assert threads[second.id] == ["start", "Started.", "go on", "Second."]


async def test_a_continuation_that_failed_leaves_the_conversation_to_its_retry(recorder: Recorder,
                                                                                store_url: str) -> None:
    one = await answer(recorder, [user("hello")], "Hi.")
    history = [user("hello"), assistant("Hi."), user("how are you?")]
    failed = await answer(recorder, history, None)  # every candidate failed: no answer
    retried = await answer(recorder, history, "Fine.")
    assert failed.conversation_id == retried.conversation_id == one.conversation_id
    assert await recorder.flush()
    assert stored_threads(store_url, [retried])[retried.id] == ["hello", "Hi.", "how are you?", "Fine."]


async def test_after_a_restart_the_store_is_asked_once(store_url: str, tmp_path: Path) -> None:
    before = Recorder(SqlStore(store_url), tmp_path / "journal", ingest="thread")
    try:
        one = await answer(before, [user("remember me")], "Remembered.")
        assert await before.flush()
    finally:
        await before.aclose()
    after = Recorder(SqlStore(store_url), tmp_path / "journal", ingest="thread")  # nothing in memory
    try:
        history = [user("remember me"), assistant("Remembered."), user("still?")]
        two = await answer(after, history, "Still.")
        three = await answer(after, [*history, assistant("Still."), user("and now?")], "Yes.")
        assert two.conversation_id == three.conversation_id == one.conversation_id
        assert after.names.lookups == 1  # the first continuation only; then it is in memory
        assert await after.flush()
    finally:
        await after.aclose()
    assert stored_threads(store_url, [three])[three.id] == [
        "remember me", "Remembered.", "still?", "Still.", "and now?", "Yes."]


async def test_forgotten_conversations_are_found_in_the_store(store_url: str, tmp_path: Path) -> None:
    recorder = Recorder(SqlStore(store_url), tmp_path / "journal", ingest="thread")
    recorder.names.capacity = 4  # remembers four heads and conversations at most
    try:
        firsts = [await answer(recorder, [user(f"topic {n}")], f"About {n}.") for n in range(10)]
        assert len(recorder.names._heads) <= 4 and len(recorder.names._tips) <= 4
        assert await recorder.flush()
        later = await answer(recorder, [user("topic 0"), assistant("About 0."), user("more")], "More.")
        assert later.conversation_id == firsts[0].conversation_id
        assert recorder.names.lookups == 1
        assert await recorder.flush()
    finally:
        await recorder.aclose()
    assert stored_threads(store_url, [later])[later.id] == ["topic 0", "About 0.", "more", "More."]


async def test_a_made_up_history_is_looked_up_once_then_remembered_for_a_while(store: SqlStore) -> None:
    now = [1000.0]
    names = ConversationNames(store.conversation_heads, forget_after=60.0, clock=lambda: now[0])
    few_shot = [user("2+2"), assistant("4"), user("3+3")]
    for _ in range(5):
        assert await names.name(make_exchange(few_shot, "6")) is not None  # a new conversation each time
    assert names.lookups == 1
    now[0] += 61.0  # long enough for another replica or an import to have stored it: ask again
    await names.name(make_exchange(few_shot, "6"))
    assert names.lookups == 2


async def test_with_the_store_away_no_name_is_guessed_and_it_is_not_asked_again_at_once() -> None:
    away = SqlStore("postgresql://postgres@127.0.0.1:1/none")  # nothing listens there
    now = [1000.0]
    names = ConversationNames(away.conversation_heads, retry_after=5.0, clock=lambda: now[0])
    history = [user("a"), assistant("b"), user("c")]
    try:
        assert await names.name(make_exchange(history, "d")) is None  # the ingester threads it later
        assert await names.name(make_exchange(history, "d")) is None
        assert (names.lookups, names.lookup_failures) == (1, 1)
        assert await names.name(make_exchange([user("new")], "d")) is not None  # a new one needs no store
        now[0] += 6.0
        assert await names.name(make_exchange(history, "d")) is None
        assert (names.lookups, names.lookup_failures) == (2, 2)
    finally:
        away.close()


async def test_a_claim_never_finished_is_released_when_evicted(store: SqlStore) -> None:
    names = ConversationNames(store.conversation_heads, in_flight=2)
    one = make_exchange([user("q")], "a")
    one.conversation_id = await names.name(one)
    names.committed(one, one.conversation_id)
    history = [user("q"), assistant("a"), user("next")]
    lost = make_exchange(history, "never committed")  # e.g. its task was cancelled
    assert await names.name(lost) == one.conversation_id
    assert await names.name(make_exchange(history, "x")) != one.conversation_id  # claimed: branches
    for n in range(2):  # two more claims elsewhere push the lost one out
        other = make_exchange([user(f"o{n}")], "a")
        other.conversation_id = await names.name(other)
        names.committed(other, other.conversation_id)
        await names.name(make_exchange([user(f"o{n}"), assistant("a"), user("more")], "b"))
    assert await names.name(make_exchange(history, "y")) == one.conversation_id
