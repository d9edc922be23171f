"""Every Store method, on SQLite and on PostgreSQL (real servers), with the same expectations."""

from __future__ import annotations

import time

import orjson
import pytest
import sqlalchemy as sa

from outlast.dialects.canonical import ToolUse
from outlast.store.base import ImportedConversation, NewMessage
from outlast.store.records import exchange_record
from outlast.store.sql import SqlStore
from tests.store.helpers import assistant, make_exchange, user


def write(store: SqlStore, *exchanges: object, conversation_id: str | None = None) -> dict[str, str | None]:
    return store.write_exchanges([exchange_record(e, conversation_id) for e in exchanges])  # type: ignore[arg-type]


def test_migrating_twice_changes_nothing(store: SqlStore) -> None:
    store.migrate()
    with store.engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from outlast.store.sql import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert version == [ScriptDirectory.from_config(config).get_current_head()]
    assert store.stats().exchanges == 0


def test_exchange_is_stored_with_attempts_usage_and_latency(store: SqlStore) -> None:
    exchange = make_exchange([user("What is a 529?")], "Overloaded.", fallback=True, system="be brief")
    placed = write(store, exchange)
    row = store.get_exchange(exchange.id)
    assert row is not None
    assert placed[exchange.id] == row["conversation_id"] is not None
    assert (row["dialect"], row["requested_model"]) == ("anthropic", "m")
    assert (row["served_provider"], row["served_model"], row["upstream_model"]) == ("openai", "gpt-x", "gpt-x-2026")
    assert row["fallback"] is True
    assert (row["input_tokens"], row["output_tokens"], row["stop_reason"]) == (11, 7, "end_turn")
    assert row["first_token_ms"] == pytest.approx(100, abs=1)
    assert row["total_ms"] == pytest.approx(250, abs=1)
    assert [(a["provider"], a["outcome"]) for a in row["attempts"]] == [("anthropic", "overloaded"),
                                                                         ("openai", "ok")]
    assert "overloaded (529)" in row["attempts"][0]["error"]
    assert row["attempts"][1]["first_event_ms"] == pytest.approx(100, abs=1)
    request = orjson.loads(row["request"])
    assert request["messages"][0]["content"][0]["text"] == "What is a 529?"
    assert request["headers"] == {"anthropic-version": "2023-06-01"}
    assert orjson.loads(row["response"])["content"][0]["text"] == "Overloaded."


def test_failed_exchange_is_stored_without_a_conversation(store: SqlStore) -> None:
    exchange = make_exchange([user("hello?")], None)
    assert write(store, exchange) == {exchange.id: None}
    row = store.get_exchange(exchange.id)
    assert row is not None and row["response"] is None and "every candidate failed" in row["error"]
    assert store.stats().conversations == 0


def test_writing_an_exchange_twice_stores_it_once(store: SqlStore) -> None:
    exchange = make_exchange([user("once")], "only once")
    first = write(store, exchange)
    again = write(store, exchange, exchange)
    assert first == again
    stats = store.stats()
    assert (stats.exchanges, stats.conversations, stats.messages) == (1, 1, 2)


def test_conversation_heads_say_which_hashes_end_a_conversation_now(store: SqlStore) -> None:
    from outlast.store.records import answer_hash, message_hashes

    one = make_exchange([user("first")], "One.")
    two = make_exchange([user("first"), assistant("One."), user("second")], "Two.")
    cid = write(store, one)[one.id]
    head_one = answer_hash(message_hashes([user("first")])[-1], [assistant("One.").content[0]])
    assert store.conversation_heads([head_one, "0" * 32]) == {head_one: cid}
    write(store, two)
    asked = [user("first"), assistant("One."), user("second")]
    head_two = answer_hash(message_hashes(asked)[-1], [assistant("Two.").content[0]])
    assert store.conversation_heads([head_one, head_two]) == {head_two: cid}  # the first is no head any more
    assert store.conversation_heads([]) == {}


def test_a_request_extending_a_conversation_continues_it(store: SqlStore) -> None:
    call = ToolUse("toolu_1", "Bash", {"command": "ls"})
    one = make_exchange([user("list files")], "Listing.", tools=(call,))
    two = make_exchange([user("list files"), assistant("Listing.", call), user("now count them")], "Three.")
    placed_one, placed_two = write(store, one)[one.id], write(store, two)[two.id]
    assert placed_one == placed_two
    conversation = store.get_conversation(placed_one or "")
    assert conversation is not None
    assert [(m.position, m.role, m.text) for m in conversation.messages] == [
        (0, "user", "list files"),
        (1, "assistant", 'Listing.\n[tool Bash] {"command":"ls"}'),
        (2, "user", "now count them"),
        (3, "assistant", "Three."),
    ]
    assert conversation.messages[1].parts[1] == {"type": "tool_use", "id": "toolu_1", "name": "Bash",
                                                 "input": {"command": "ls"}}
    assert conversation.summary.title == "list files"
    assert conversation.summary.message_count == 4


def test_threading_within_one_batch(store: SqlStore) -> None:
    one = make_exchange([user("a")], "b")
    two = make_exchange([user("a"), assistant("b"), user("c")], "d")
    placed = write(store, one, two)
    assert placed[one.id] == placed[two.id]
    assert store.stats().messages == 4


def test_a_fork_of_an_earlier_point_starts_a_new_conversation(store: SqlStore) -> None:
    one = make_exchange([user("a")], "b")
    two = make_exchange([user("a"), assistant("b"), user("c")], "d")
    fork = make_exchange([user("a"), assistant("b"), user("something else")], "e")
    first, _, forked = write(store, one)[one.id], write(store, two), write(store, fork)[fork.id]
    assert forked != first
    conversation = store.get_conversation(forked or "")
    assert conversation is not None
    assert [m.text for m in conversation.messages] == ["a", "b", "something else", "e"]


def test_explicit_conversation_id_appends_what_is_new(store: SqlStore) -> None:
    one = make_exchange([user("first")], "answer one")
    two = make_exchange([user("first"), assistant("answer one"), user("second")], "answer two")
    assert write(store, one, conversation_id="chat-1") == {one.id: "chat-1"}
    assert write(store, two, conversation_id="chat-1") == {two.id: "chat-1"}
    conversation = store.get_conversation("chat-1")
    assert conversation is not None
    assert [m.text for m in conversation.messages] == ["first", "answer one", "second", "answer two"]


def test_import_is_idempotent_and_replaces_a_grown_conversation(store: SqlStore) -> None:
    messages = [NewMessage("user", [{"type": "text", "text": "hi there"}], 1.0),
                NewMessage("assistant", [{"type": "text", "text": "hello"}], 2.0)]
    item = ImportedConversation("claude", "u-1", "Greeting", 1.0, 2.0, messages)
    assert store.import_conversations([item]).added == 1
    assert store.import_conversations([item]).unchanged == 1
    grown = ImportedConversation("claude", "u-1", "Greeting", 1.0, 3.0,
                                 [*messages, NewMessage("user", [{"type": "text", "text": "bye"}], 3.0)])
    assert store.import_conversations([grown]).updated == 1
    stats = store.stats()
    assert (stats.conversations, stats.messages) == (1, 3)
    conversation = store.get_conversation("claude-u-1")
    assert conversation is not None and [m.text for m in conversation.messages] == ["hi there", "hello", "bye"]


def test_list_is_newest_first_and_get_takes_a_unique_prefix(store: SqlStore) -> None:
    for n in range(3):
        store.import_conversations([ImportedConversation(
            "chatgpt", f"id-{n}", f"title {n}", float(n), 100.0 + n,
            [NewMessage("user", [{"type": "text", "text": f"message {n}"}])])])
    listed = store.list_conversations(limit=2)
    assert [c.title for c in listed] == ["title 2", "title 1"]
    assert [c.title for c in store.list_conversations(limit=5, offset=2)] == ["title 0"]
    assert store.conversation_ids() == ["chatgpt-id-2", "chatgpt-id-1", "chatgpt-id-0"]
    found = store.get_conversation("chatgpt-id-1")
    assert found is not None and found.summary.title == "title 1"
    assert store.get_conversation("chatgpt-id") is None  # ambiguous
    assert store.get_conversation("nope") is None


def test_full_text_search_finds_words_in_any_message(store: SqlStore) -> None:
    write(store, make_exchange([user("How do I rotate the kubernetes certificates?")], "Use kubeadm certs renew."))
    write(store, make_exchange([user("Recipe for bread")], "Flour, water, salt, yeast."))
    hits = store.search("kubeadm renew")
    assert len(hits) == 1 and hits[0].role == "assistant"
    assert "kubeadm" in hits[0].snippet and hits[0].title.startswith("How do I rotate")
    assert [h.role for h in store.search("bread")] == ["user"]
    assert store.search("nothing-like-this zebra") == []
    assert store.search("'\"*)(") == []  # punctuation only: no words, no syntax error


def test_retention_by_age_and_by_size(store: SqlStore) -> None:
    old = make_exchange([user("old question")], "old answer")
    old.created = time.time() - 40 * 86400
    write(store, old)
    new = [make_exchange([user(f"question {n}")], "answer " + "x" * 2000) for n in range(5)]
    write(store, *new)
    assert store.stats().conversations == 6
    removed = store.prune(older_than=time.time() - 30 * 86400)
    assert (removed.exchanges, removed.conversations) == (1, 1)
    assert store.get_exchange(old.id) is None
    assert store.search("old") == []
    before = store.stats()
    store.prune(max_bytes=before.bytes // 2)
    after = store.stats()
    assert 0 < after.bytes <= before.bytes // 2
    assert after.exchanges < before.exchanges
    with store.engine.connect() as conn:  # nothing left dangling
        orphans = conn.execute(sa.text("SELECT count(*) FROM messages m WHERE NOT EXISTS "
                                       "(SELECT 1 FROM conversations c WHERE c.id = m.conversation_id)")).scalar()
    assert orphans == 0
    store.vacuum()
    assert store.stats() == after


def _text(text: str) -> list[dict[str, object]]:
    return [{"type": "text", "text": text}]


def test_reimporting_an_export_keeps_turns_added_through_the_gateway(store: SqlStore) -> None:
    exported = [NewMessage("user", _text("how do I retry 529s?"), 1.0),
                NewMessage("assistant", _text("with backoff"), 2.0)]
    item = ImportedConversation("chatgpt", "c-1", "Retries", 1.0, 2.0, exported)
    assert store.import_conversations([item]).added == 1
    # `outlast chat --resume chatgpt-c-1`: the history goes with the new turn, named explicitly
    resumed = make_exchange([user("how do I retry 529s?"), assistant("with backoff"), user("and 503s?")],
                            "the same way")
    write(store, resumed, conversation_id="chatgpt-c-1")
    again = store.import_conversations([item])
    assert (again.added, again.updated, again.unchanged) == (0, 0, 1)
    conversation = store.get_conversation("chatgpt-c-1")
    assert conversation is not None
    assert [m.text for m in conversation.messages] == ["how do I retry 529s?", "with backoff", "and 503s?",
                                                       "the same way"]
    # The export itself grew (the chat went on in ChatGPT too): its part is replaced, ours follows it.
    grown = ImportedConversation("chatgpt", "c-1", "Retries, more", 1.0, 3.0,
                                 [*exported, NewMessage("user", _text("thanks"), 3.0)])
    assert store.import_conversations([grown]).updated == 1
    conversation = store.get_conversation("chatgpt-c-1")
    assert conversation is not None and conversation.summary.title == "Retries, more"
    assert [(m.position, m.text) for m in conversation.messages] == [
        (0, "how do I retry 529s?"), (1, "with backoff"), (2, "thanks"), (3, "and 503s?"), (4, "the same way")]
    assert conversation.messages[3].exchange_id == resumed.id and conversation.messages[2].exchange_id is None
    assert conversation.summary.message_count == 5
    assert store.search("same way")[0].conversation_id == "chatgpt-c-1"
    assert store.import_conversations([grown]).unchanged == 1
    # Its head still covers every message: a client resending all of it continues it in place.
    follow = make_exchange([user("how do I retry 529s?"), assistant("with backoff"), user("thanks"),
                            user("and 503s?"), assistant("the same way"), user("and 500s?")], "retry once")
    assert write(store, follow)[follow.id] == "chatgpt-c-1"
    conversation = store.get_conversation("chatgpt-c-1")
    assert conversation is not None and [m.text for m in conversation.messages][-2:] == ["and 500s?", "retry once"]


def test_reimport_keeps_gateway_turns_of_conversations_imported_before_source_hashes(store: SqlStore) -> None:
    exported = [NewMessage("user", _text("first question"), 1.0), NewMessage("assistant", _text("answer"), 2.0)]
    item = ImportedConversation("claude", "u-9", "Old", 1.0, 2.0, exported)
    store.import_conversations([item])
    write(store, make_exchange([user("first question"), assistant("answer"), user("more")], "sure"),
          conversation_id="claude-u-9")
    with store.engine.begin() as conn:  # as revisions before 0006 left an imported conversation
        conn.execute(sa.text("UPDATE conversations SET source_hash = NULL, source_count = NULL"))
    assert store.import_conversations([item]).unchanged == 1
    conversation = store.get_conversation("claude-u-9")
    assert conversation is not None and [m.text for m in conversation.messages] == [
        "first question", "answer", "more", "sure"]
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT source_count FROM conversations")).scalar_one() == 2


def test_a_named_conversation_gets_the_new_turn_when_the_client_leaves_out_textless_messages(
        store: SqlStore) -> None:
    # A ChatGPT export with a reasoning-only node: stored, but a text-only client cannot send it.
    stored = [NewMessage("user", _text("plan the migration"), 1.0),
              NewMessage("assistant", [{"type": "thinking", "thinking": "weighing options"}], 2.0),
              NewMessage("assistant", _text("in three steps"), 3.0)]
    store.import_conversations([ImportedConversation("chatgpt", "r-1", "Plan", 1.0, 3.0, stored)])
    sent = make_exchange([user("plan the migration"), assistant("in three steps"), user("what is step one?")],
                         "back up first")
    assert write(store, sent, conversation_id="chatgpt-r-1") == {sent.id: "chatgpt-r-1"}
    conversation = store.get_conversation("chatgpt-r-1")
    assert conversation is not None
    assert [(m.role, m.text) for m in conversation.messages] == [
        ("user", "plan the migration"), ("assistant", ""), ("assistant", "in three steps"),
        ("user", "what is step one?"), ("assistant", "back up first")]
    # The next turn of the same chat resends what it sent before: it continues exactly.
    later = make_exchange([user("plan the migration"), assistant("in three steps"), user("what is step one?"),
                           assistant("back up first"), user("then?")], "migrate")
    write(store, later, conversation_id="chatgpt-r-1")
    conversation = store.get_conversation("chatgpt-r-1")
    assert conversation is not None
    assert [m.text for m in conversation.messages][3:] == ["what is step one?", "back up first", "then?", "migrate"]
    # A client that sends only its new turn still has it stored.
    alone = make_exchange([user("and finally?")], "done")
    write(store, alone, conversation_id="chatgpt-r-1")
    conversation = store.get_conversation("chatgpt-r-1")
    assert conversation is not None and [m.text for m in conversation.messages][-2:] == ["and finally?", "done"]


def test_retention_keeps_imported_conversations_whatever_their_age(store: SqlStore) -> None:
    years_ago = time.time() - 3 * 365 * 86400
    history = [NewMessage("user", _text("an old chat " + "y" * 4000), years_ago)]
    store.import_conversations([ImportedConversation("claude", "old-1", "Old chat", years_ago, years_ago, history)])
    recorded = make_exchange([user("recorded long ago")], "gone")
    recorded.created = time.time() - 40 * 86400
    write(store, recorded)
    removed = store.prune(older_than=time.time() - 30 * 86400)
    assert (removed.exchanges, removed.conversations) == (1, 1)
    assert store.get_conversation("claude-old-1") is not None
    write(store, *[make_exchange([user(f"new {n}")], "z" * 1000) for n in range(3)])
    store.prune(max_bytes=100)  # far less than the import alone: only what was recorded goes
    stats = store.stats()
    assert (stats.exchanges, stats.conversations) == (0, 1)
    assert store.get_conversation("claude-old-1") is not None
    assert store.search("old chat")[0].conversation_id == "claude-old-1"


def test_deleting_a_conversation_takes_its_messages_and_exchanges_and_nothing_else(store: SqlStore) -> None:
    first = make_exchange([user("How do I rotate the kubernetes certificates?")], "Use kubeadm certs renew.")
    placed = write(store, first)
    conversation = placed[first.id]
    assert conversation is not None
    follow_up = make_exchange([user("How do I rotate the kubernetes certificates?"),
                               assistant("Use kubeadm certs renew."), user("And the etcd ones?")], "Those too.")
    write(store, follow_up)
    other = make_exchange([user("Recipe for bread")], "Flour, water, salt, yeast.")
    write(store, other)
    failed = make_exchange([user("hello?")], None)
    write(store, failed)
    store.import_conversations([ImportedConversation("claude", "u-1", "Greeting", 1.0, 2.0,
                                                     [NewMessage("user", [{"type": "text", "text": "kubeadm"}])])])
    removed = store.delete_conversation(conversation)
    assert (removed.exchanges, removed.conversations) == (2, 1)
    assert store.get_conversation(conversation) is None
    assert store.get_exchange(first.id) is None and store.get_exchange(follow_up.id) is None
    assert [h.conversation_id for h in store.search("kubeadm")] == ["claude-u-1"]  # search forgot it too
    assert store.get_exchange(other.id) is not None and store.get_exchange(failed.id) is not None
    with store.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM attempts WHERE exchange_id IN (:a, :b)"),
                            {"a": first.id, "b": follow_up.id}).scalar()
    assert left == 0
    assert store.delete_conversation("claude-u-1") == type(removed)(0, 1)  # an imported one, by its id
    assert store.delete_conversation("nope") == type(removed)(0, 0)
    assert store.stats().conversations == 1
