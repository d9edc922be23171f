"""Through the real gateway: what a client received is in the store, threaded into the conversation
the response named, and no key is."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest
import sqlalchemy as sa

from outlast.app import build_gateway
from outlast.config import validate
from outlast.serving import BackgroundServer
from outlast.store.sql import SqlStore
from tests.conftest import MASTER_KEY, PROVIDER_KEYS, gateway_document


@pytest.fixture
def recording_gateway(sim: Any, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("OUTLAST_DATA_DIR", str(tmp_path / "data"))
    gateway = build_gateway(validate(gateway_document(sim.url, store=store_url)))
    with BackgroundServer(gateway) as running:
        server: Any = running
        server.recorder = gateway.sinks[0]
        yield server
    # leaving the block ran the lifespan shutdown: the recorder has written everything


def test_every_answer_is_stored_with_who_served_it_and_turns_thread(recording_gateway: Any, store_url: str,
                                                                   sim: Any) -> None:
    url = recording_gateway.url
    oa = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY)
    first = oa.chat.completions.with_raw_response.create(
        model="to-openai", messages=[{"role": "user", "content": "tell me about failover"}])
    answer = first.parse().choices[0].message.content or ""
    second_stream = oa.chat.completions.create(
        model="to-openai", stream=True,
        messages=[{"role": "user", "content": "tell me about failover"},
                  {"role": "assistant", "content": answer},
                  {"role": "user", "content": "and about retries"}])
    streamed = "".join(c.choices[0].delta.content or "" for c in second_stream if c.choices)
    sim.add_fault(vendor="anthropic", mode="status", status=529)
    an = anthropic.Anthropic(base_url=url, api_key=MASTER_KEY, max_retries=0)
    with an.messages.with_streaming_response.create(
            model="claude-opus-4-6", max_tokens=64, stream=True,
            messages=[{"role": "user", "content": "served by a fallback"}]) as response:
        fallback_id = response.headers["x-outlast-exchange-id"]
        assert "".join(response.iter_text())
    assert recording_gateway.recorder.wait_ingested()  # the store lags the journal by a moment
    store = SqlStore(store_url)
    try:
        row = store.get_exchange(first.headers["x-outlast-exchange-id"])
        assert row is not None and row["served_provider"] == "openai" and row["dialect"] == "openai"
        conversation = store.get_conversation(row["conversation_id"])
        assert conversation is not None
        assert [m.text for m in conversation.messages] == [
            "tell me about failover", answer, "and about retries", streamed]
        fallback = store.get_exchange(fallback_id)
        assert fallback is not None and fallback["fallback"] is True
        assert [a["outcome"] for a in fallback["attempts"]][-1] == "ok"
        assert fallback["attempts"][0]["outcome"] != "ok"
        assert fallback["first_token_ms"] is not None and fallback["total_ms"] >= fallback["first_token_ms"]
        # Never a key: not the client's, not a provider's, anywhere in the database.
        secrets = [MASTER_KEY, *PROVIDER_KEYS.values()]
        with store.engine.connect() as conn:
            for table in ("exchanges", "attempts", "conversations", "messages"):
                for values in conn.execute(sa.text(f"SELECT * FROM {table}")):
                    text = " ".join(str(v) for v in values)
                    assert not [s for s in secrets if s in text], table
    finally:
        store.close()
    if store_url.startswith("sqlite:///"):
        database = Path(store_url.removeprefix("sqlite:///"))
        for path in database.parent.glob(database.name + "*"):
            data = path.read_bytes()
            assert not [s for s in secrets if s.encode() in data], path


def test_conversation_header_names_the_conversation_and_is_returned(recording_gateway: Any, store_url: str) -> None:
    import httpx

    url = f"{recording_gateway.url}/v1/chat/completions"
    auth = {"authorization": f"Bearer {MASTER_KEY}"}
    first = [{"role": "user", "content": "remember the number 42"}]
    named = httpx.post(url, json={"model": "to-openai", "messages": first},
                       headers={**auth, "x-outlast-conversation-id": "my-project"}, timeout=30)
    assert named.status_code == 200 and named.headers["x-outlast-conversation-id"] == "my-project"
    answer = named.json()["choices"][0]["message"]["content"]
    follow = [*first, {"role": "assistant", "content": answer}, {"role": "user", "content": "which number?"}]
    again = httpx.post(url, json={"model": "to-openai", "messages": follow, "stream": True},
                       headers={**auth, "x-outlast-conversation-id": "my-project"}, timeout=30)
    assert again.status_code == 200 and again.headers["x-outlast-conversation-id"] == "my-project"
    unnamed = httpx.post(url, json={"model": "to-openai", "messages": [{"role": "user", "content": "hi"}]},
                         headers=auth, timeout=30)
    found = unnamed.headers["x-outlast-conversation-id"]  # a new conversation: the recorder names it at once
    continued = httpx.post(url, json={"model": "to-openai", "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": unnamed.json()["choices"][0]["message"][
            "content"]}, {"role": "user", "content": "again"}]}, headers=auth, timeout=30)
    assert continued.status_code == 200
    assert continued.headers["x-outlast-conversation-id"] == found  # found from the request alone
    assert recording_gateway.recorder.wait_ingested()
    store = SqlStore(store_url)
    try:
        conversation = store.get_conversation("my-project")
        assert conversation is not None
        assert [m.role for m in conversation.messages] == ["user", "assistant", "user", "assistant"]
        assert conversation.messages[2].text == "which number?"
        other = store.get_conversation(found)
        assert other is not None and [m.text for m in other.messages][::2] == ["hi", "again"]
        row = store.get_exchange(continued.headers["x-outlast-exchange-id"])
        assert row is not None and row["conversation_id"] == found
    finally:
        store.close()


def _openai_turn(client: openai.OpenAI, history: list[dict[str, str]], stream: bool) -> tuple[str, str, str]:
    """One turn through the official OpenAI SDK: (conversation header, exchange id, answer)."""
    if stream:
        with client.chat.completions.with_streaming_response.create(
                model="to-openai", stream=True, messages=history) as response:
            text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
            return response.headers["x-outlast-conversation-id"], response.headers["x-outlast-exchange-id"], text
    raw = client.chat.completions.with_raw_response.create(model="to-openai", messages=history)
    return (raw.headers["x-outlast-conversation-id"], raw.headers["x-outlast-exchange-id"],
            raw.parse().choices[0].message.content or "")


def _anthropic_turn(client: anthropic.Anthropic, history: list[dict[str, str]], stream: bool) -> tuple[str, str, str]:
    """One turn through the official Anthropic SDK: (conversation header, exchange id, answer)."""
    if stream:
        with client.messages.with_streaming_response.create(
                model="to-anthropic", max_tokens=64, stream=True, messages=history) as response:
            text = "".join(e.delta.text for e in response.parse()
                           if e.type == "content_block_delta" and e.delta.type == "text_delta")
            return response.headers["x-outlast-conversation-id"], response.headers["x-outlast-exchange-id"], text
    raw = client.messages.with_raw_response.create(model="to-anthropic", max_tokens=64,
                                                    messages=history)
    message = raw.parse()
    return (raw.headers["x-outlast-conversation-id"], raw.headers["x-outlast-exchange-id"],
            "".join(b.text for b in message.content if b.type == "text"))


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
@pytest.mark.parametrize("first_streamed", [True, False])
def test_every_answer_says_its_conversation_and_is_stored_there(recording_gateway: Any, store_url: str,
                                                                sdk: str, first_streamed: bool) -> None:
    """New or continued, streamed or not: the response names the conversation before the answer,
    and the store threads the exchange into exactly that one."""
    url = recording_gateway.url
    turn: Any
    if sdk == "openai":
        client: Any = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0)
        turn = _openai_turn
    else:
        client = anthropic.Anthropic(base_url=url, api_key=MASTER_KEY, max_retries=0)
        turn = _anthropic_turn
    history: list[dict[str, str]] = []
    said: list[tuple[str, str]] = []  # (conversation header, exchange id) of each turn
    for n, stream in enumerate((first_streamed, not first_streamed, first_streamed)):
        history.append({"role": "user", "content": f"turn {n} of the {sdk} conversation"})
        conversation, exchange_id, text = turn(client, history, stream)
        assert text
        history.append({"role": "assistant", "content": text})
        said.append((conversation, exchange_id))
    named = said[0][0]
    assert named and [c for c, _ in said] == [named] * 3  # a first turn gets an id; the others the same
    branch, branch_id, _ = turn(client, history[:3], not first_streamed)  # the second turn asked again
    assert branch not in (named, "")  # it branches off: a conversation of its own
    client_named = "client-named-" + sdk
    raw_history = [{"role": "user", "content": "named by the client"}]
    if sdk == "openai":
        raw = client.chat.completions.with_raw_response.create(
            model="to-openai", messages=raw_history, extra_headers={"x-outlast-conversation-id": client_named})
    else:
        raw = client.messages.with_raw_response.create(
            model="to-anthropic", max_tokens=64, messages=raw_history,
            extra_headers={"x-outlast-conversation-id": client_named})
    assert raw.headers["x-outlast-conversation-id"] == client_named  # honoured
    assert recording_gateway.recorder.names.lookups == 0  # all from memory: no database round-trip
    assert recording_gateway.recorder.wait_ingested()
    store = SqlStore(store_url)
    try:
        for conversation, exchange_id in [*said, (branch, branch_id),
                                          (client_named, raw.headers["x-outlast-exchange-id"])]:
            row = store.get_exchange(exchange_id)
            assert row is not None and row["conversation_id"] == conversation  # stored where it said
        stored = store.get_conversation(named)
        assert stored is not None
        assert [m.text for m in stored.messages] == [m["content"] for m in history]
        forked = store.get_conversation(branch)
        assert forked is not None and [m.text for m in forked.messages][:3] == [m["content"] for m in history[:3]]
        assert len(forked.messages) == 4
        assert store.get_conversation(client_named) is not None
    finally:
        store.close()


def test_metrics_count_journal_commits_and_their_fsyncs(recording_gateway: Any) -> None:
    import httpx

    url = recording_gateway.url
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    for n in range(3):
        answer = httpx.post(f"{url}/v1/chat/completions", headers=headers, timeout=20, json={
            "model": "to-openai", "messages": [{"role": "user", "content": f"count me {n}"}]})
        assert answer.status_code == 200
    text = httpx.get(f"{url}/metrics", timeout=10).text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith("outlast_journal_")}
    assert values["outlast_journal_exchanges_total"] == 3
    # one after another: nothing else in flight, so each commit had its own fsync
    assert values["outlast_journal_fsyncs_total"] == 3


def test_a_stream_the_client_abandons_is_stored_as_far_as_it_got(recording_gateway: Any, store_url: str,
                                                                 sim: Any) -> None:
    sim.add_fault(vendor="openai", mode="slow", gap_ms=250)  # a long answer, one word at a time
    words = " ".join(f"word{n}" for n in range(40))
    oa = openai.OpenAI(base_url=f"{recording_gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)
    received = ""
    with oa.chat.completions.with_streaming_response.create(
            model="to-openai", stream=True,
            messages=[{"role": "user", "content": f"say [[reply:{words}]]"}]) as response:
        exchange_id = response.headers["x-outlast-exchange-id"]
        for chunk in response.parse():
            received += (chunk.choices[0].delta.content or "") if chunk.choices else ""
            if "word2" in received:
                break  # leaving the block closes the connection mid-answer
    recorder = recording_gateway.recorder
    deadline = time.monotonic() + 30
    while recorder.journaled < 1 and time.monotonic() < deadline:  # committed once the gateway notices
        time.sleep(0.02)
    assert recorder.wait_ingested()
    store = SqlStore(store_url)
    try:
        row = store.get_exchange(exchange_id)
    finally:
        store.close()
    assert row is not None, "the abandoned exchange was not recorded"
    assert row["client_disconnected"] is True
    stored = orjson.loads(row["response"])["content"][0]["text"]
    assert stored.startswith("word0 word1 word2") and "word39" not in stored


def test_an_answer_that_cannot_be_journaled_still_goes_out_and_is_counted(recording_gateway: Any) -> None:
    import httpx

    journal = recording_gateway.recorder.journal
    full = os.open("/dev/full", os.O_WRONLY)  # every write fails with ENOSPC: a full disk
    try:
        os.dup2(full, journal._fd)
    finally:
        os.close(full)
    url = recording_gateway.url
    answer = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {MASTER_KEY}"},
                        timeout=20, json={"model": "to-openai", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]
    text = httpx.get(f"{url}/metrics", timeout=10).text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith("outlast_journal_")}
    assert values["outlast_journal_unrecorded_exchanges_total"] == 1
    assert values["outlast_journal_write_failures_total"] == 1
    assert values["outlast_journal_exchanges_total"] == 0
