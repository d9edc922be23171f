"""Redaction (``governance.redact``): a secret in a request is replaced by a placeholder before any
provider sees it, and the caller gets it back in the answer, whole or streamed, in both dialects;
the stored exchange keeps the placeholder. By default the request keeps its class for approval;
with ``redaction_lowers_class`` it is routed by what the provider actually receives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
import sqlalchemy as sa

from outlast.dialects.canonical import (
    Message,
    Request,
    Response,
    Start,
    Stop,
    StopReason,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolCall,
    ToolResult,
    ToolUse,
    collect,
)
from outlast.policy.redact import PATTERN, placeholder, redact
from tests.conftest import MASTER_KEY
from tests.policy.conftest import SECRET, policy_document

PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
       "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n-----END RSA PRIVATE KEY-----")
GITHUB = "ghp_" + "a1B2" * 9
ONE = placeholder(1)


def user(*texts: str) -> Request:
    return Request("m", tuple(Message("user", (Text(t),)) for t in texts))


# --------------------------------------------------------------------------- the request


def test_each_secret_gets_one_placeholder_numbered_by_first_appearance() -> None:
    found = redact(Request("m", (Message("user", (Text(f"a {SECRET} b {GITHUB} c {SECRET}"),)),),
                           system=(Text(f"token {GITHUB}"),)))
    assert found is not None
    redacted, redaction = found
    assert redacted.system[0].text == f"token {ONE}"
    assert redacted.messages[0].content[0].text == f"a {placeholder(2)} b {ONE} c {placeholder(2)}"  # type: ignore
    assert redaction.kinds == ["GitHub Token", "AWS Access Key"]
    assert SECRET not in repr(redaction) and GITHUB not in repr(redaction)


@pytest.mark.parametrize("name", ["AWS_SECRET_ACCESS_KEY", "aws_secret_access_key", "Aws_Secret_Access_Key"])
def test_an_aws_secret_access_key_is_redacted_whatever_the_case_of_its_name(name: str) -> None:
    key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    found = redact(user(f'{{"{name}": "{key}"}}'))
    assert found is not None
    redacted, redaction = found
    assert redacted.messages[0].content[0].text == f'{{"{name}": "{ONE}"}}'  # type: ignore[union-attr]
    assert redaction.kinds == ["AWS Access Key"] and redaction.by_placeholder == {ONE: key}


def test_nothing_to_redact_gives_none_and_untouched_parts_stay_the_same_objects() -> None:
    assert redact(user("hello", "a@example.com")) is None
    plain = Message("user", (Text("nothing here"),))
    request = Request("m", (plain, Message("user", (Text(SECRET),))))
    found = redact(request)
    assert found is not None and found[0].messages[0] is plain


def test_a_private_key_is_redacted_whole_and_tool_calls_and_results_too() -> None:
    request = Request("m", (
        Message("assistant", (ToolUse("t1", "write", {"path": "id_rsa", "lines": [PEM, "ok"]}),)),
        Message("user", (ToolResult("t1", (Text(f"wrote {PEM}\nand {SECRET}"),)),)),
    ))
    found = redact(request)
    assert found is not None
    redacted = found[0]
    dumped = orjson.dumps(redacted).decode()
    assert "MIIBOg" not in dumped and "END RSA" not in dumped and SECRET not in dumped
    assert redacted.messages[0].content[0].input == {"path": "id_rsa", "lines": [ONE, "ok"]}  # type: ignore
    assert redacted.messages[1].content[0].content[0].text == f"wrote {ONE}\nand {placeholder(2)}"  # type: ignore


def test_placeholders_already_in_the_request_are_not_reused() -> None:
    found = redact(user(f"literally {ONE} and {placeholder(2)}", SECRET))
    assert found is not None
    assert found[0].messages[1].content[0].text == placeholder(3)  # type: ignore[union-attr]
    assert found[1].restore_text(f"{ONE} {placeholder(3)}") == f"{ONE} {SECRET}"


# --------------------------------------------------------------------------- the answer


async def _events(events: list[Any]) -> AsyncIterator[Any]:
    for event in events:
        yield event


def _restored(redaction: Any, events: list[Any]) -> list[Any]:
    async def run() -> list[Any]:
        return [e async for e in redaction.restore(_events(events))]
    return asyncio.run(run())


def _split_everywhere(text: str) -> Iterator[list[str]]:
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            yield [text[:i], text[i:j], text[j:]]


def test_a_placeholder_split_across_deltas_anywhere_is_restored_and_no_piece_of_it_leaks() -> None:
    found = redact(user(f"{SECRET} and {GITHUB}"))
    assert found is not None
    redaction = found[1]
    answer = f"Key {ONE}, token {placeholder(2)} and {{{{braces}}}} {placeholder(7)} end {{{{OUTLAST_SEC"
    expected = f"Key {SECRET}, token {GITHUB} and {{{{braces}}}} {placeholder(7)} end {{{{OUTLAST_SEC"
    for pieces in _split_everywhere(answer):
        events = [Start("id", "m"), *(TextDelta(0, p) for p in pieces), Stop(StopReason.END_TURN)]
        out = _restored(redaction, events)
        deltas = [e.text for e in out if isinstance(e, TextDelta)]
        assert "".join(deltas) == expected, pieces
        for delta in deltas:  # a piece is either passed through or restored whole, never a fragment
            assert "OUTLAST_SECRET_1" not in delta and "OUTLAST_SECRET_2" not in delta
        assert isinstance(out[-1], Stop) and isinstance(out[0], Start)


def test_only_a_possible_placeholder_prefix_is_held_back() -> None:
    found = redact(user(SECRET))
    assert found is not None
    seen: list[str] = []

    async def run() -> None:
        async def source() -> AsyncIterator[Any]:
            yield TextDelta(0, "plain text {")
            seen.append("after 1")
            yield TextDelta(0, "{OUTLAST_SECRET_")
            seen.append("after 2")
            yield TextDelta(0, "1}} done")
        async for event in found[1].restore(source()):
            seen.append(event.text)
    asyncio.run(run())
    assert seen == ["plain text ", "after 1", "after 2", f"{SECRET} done"]


def test_a_broken_stream_still_gets_the_held_text_then_the_error() -> None:
    found = redact(user(SECRET))
    assert found is not None
    out: list[str] = []

    async def run() -> None:
        async def source() -> AsyncIterator[Any]:
            yield TextDelta(0, "so {{OUT")
            raise ConnectionError("cut")
        async for event in found[1].restore(source()):
            out.append(event.text)
    with pytest.raises(ConnectionError):
        asyncio.run(run())
    assert out == ["so ", "{{OUT"]


def test_tool_calls_get_the_secret_json_escaped_and_thinking_is_left_as_signed() -> None:
    found = redact(user(f"{PEM} {SECRET}"))
    assert found is not None
    redaction = found[1]
    events = [Start("id", "m"), ThinkingDelta(0, f"use {ONE}"), ThinkingDelta(0, "", signature="sig"),
              TextDelta(1, "writing "), TextDelta(1, "{{OUTLAST"),
              ToolCall(2, "c1", "write", json.dumps({"content": ONE, "also": f"k={placeholder(2)}"})),
              Stop(StopReason.TOOL_USE)]
    out = _restored(redaction, events)
    response = collect(out)
    assert response.content[0] == Thinking(f"use {ONE}", signature="sig")
    assert response.content[1] == Text("writing {{OUTLAST")
    assert response.content[2] == ToolUse("c1", "write", {"content": PEM, "also": f"k={SECRET}"})
    hidden = redaction.hide_response(response)
    assert PEM not in orjson.dumps(hidden).decode() and SECRET not in orjson.dumps(hidden).decode()
    assert hidden.content[2] == ToolUse("c1", "write", {"content": ONE, "also": f"k={placeholder(2)}"})


def test_hide_response_puts_the_placeholders_back_for_the_store() -> None:
    found = redact(user(SECRET))
    assert found is not None
    response = Response("id", "m", (Text(f"your key {SECRET}!"),))
    assert found[1].hide_response(response).content == (Text(f"your key {ONE}!"),)


# --------------------------------------------------------------------------- through the gateway

REPLY = f"[[reply:Your key is {SECRET}, keep it safe.]]"
ANSWER = f"Your key is {SECRET}, keep it safe."


def _gateway(sim: Any, tmp_path: Path, name: str, **governance: Any) -> Any:
    from outlast.app import build_gateway
    from outlast.config import validate
    from outlast.serving import BackgroundServer

    store = f"sqlite:///{tmp_path / (name + '.db')}"
    document = policy_document(sim.url, store=store, governance={"redact": True, **governance})
    gateway = build_gateway(validate(document), data_directory=tmp_path / name)
    server: Any = BackgroundServer(gateway)
    server.gateway, server.store, server.directory = gateway, store, tmp_path / name
    return server


@pytest.fixture
def redacting(sim: Any, tmp_path: Path) -> Iterator[Any]:
    with _gateway(sim, tmp_path, "keeps") as server:
        yield server


@pytest.fixture
def lowering(sim: Any, tmp_path: Path) -> Iterator[Any]:
    with _gateway(sim, tmp_path, "lowers", redaction_lowers_class=True) as server:
        yield server


def vendor_bodies(sim: Any) -> str:
    return json.dumps([r["body"] for r in sim.requests()])


def _ask(url: str, dialect: str, stream: bool, route: str, content: Any) -> tuple[str, dict[str, str]]:
    if dialect == "openai":
        oa = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)
        messages: Any = [{"role": "user", "content": content}]
        if stream:
            with oa.chat.completions.with_streaming_response.create(
                    model=route, messages=messages, stream=True) as raw:
                headers = dict(raw.headers)
                text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
            return text, headers
        done = oa.chat.completions.with_raw_response.create(model=route, messages=messages)
        return done.parse().choices[0].message.content or "", dict(done.headers)
    an = anthropic.Anthropic(base_url=url, api_key=MASTER_KEY, max_retries=0, timeout=30)
    turns: Any = content if isinstance(content, list) else [{"role": "user", "content": content}]
    if stream:
        with an.messages.stream(model=route, max_tokens=400, messages=turns) as events:
            text = "".join(events.text_stream)
            final = events.get_final_message()
            assert final.content[-1].type == "text"
            return text, {}
    made = an.messages.with_raw_response.create(model=route, max_tokens=400, messages=turns)
    message = made.parse()
    return "".join(b.text for b in message.content if b.type == "text"), dict(made.headers)


def _stored(server: Any) -> str:
    """Every byte of the store: database, its journal files and the recorder's journal."""
    server.gateway.sinks[0].wait_ingested()
    engine = sa.create_engine(server.store)
    with engine.connect() as conn:
        rows = [str(tuple(r)) for t in ("exchanges", "messages") for r in conn.execute(sa.text(f"SELECT * FROM {t}"))]
    engine.dispose()
    files = [p for p in server.directory.parent.rglob("*") if p.is_file()]
    return "\n".join(rows) + "".join(p.read_bytes().decode("utf-8", "replace") for p in files)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_the_vendor_sees_a_placeholder_and_the_caller_gets_the_secret_back(
        redacting: Any, sim: Any, dialect: str, stream: bool) -> None:
    text, _ = _ask(redacting.url, dialect, stream, "gov-secret", f"Repeat this. {REPLY}")
    assert text == ANSWER
    sent = vendor_bodies(sim)
    assert SECRET not in sent and ONE in sent
    assert [r["vendor"] for r in sim.requests()] == ["anthropic"]
    stored = _stored(redacting)
    assert SECRET not in stored and ONE in stored  # the stored exchange is what the provider saw


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_secret_in_a_tool_result_is_redacted_and_its_echo_restored(redacting: Any, sim: Any, stream: bool) -> None:
    turns = [{"role": "user", "content": "read .env"},
             {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {
                 "path": ".env"}}]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                           "content": f"AWS_ACCESS_KEY_ID={SECRET}"}]}]
    text, _ = _ask(redacting.url, "anthropic", stream, "gov-secret", turns)
    assert text.startswith(f"The tool returned: AWS_ACCESS_KEY_ID={SECRET}.")
    assert SECRET not in vendor_bodies(sim)


def test_redaction_keeps_the_class_by_default_so_unapproved_providers_are_still_skipped(
        redacting: Any, sim: Any) -> None:
    _, headers = _ask(redacting.url, "anthropic", False, "gov-open-first", REPLY)
    assert headers["x-outlast-served-by"] == "anthropic/claude-opus-4-6"  # openai is not approved for secrets
    assert [r["vendor"] for r in sim.requests()] == ["anthropic"]
    assert SECRET not in vendor_bodies(sim)
    redacting.gateway.governance.audit.flush()
    engine = sa.create_engine(redacting.store)
    with engine.connect() as conn:
        record = orjson.loads(conn.execute(sa.text("SELECT record FROM gov_audit ORDER BY seq DESC")).scalar_one())
    engine.dispose()
    assert record["data_class"] == "secret" and record["redacted"] == ["AWS Access Key"]
    assert "openai/gpt-5.1" in record["excluded"]


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_with_redaction_lowering_the_class_a_redacted_request_may_go_to_providers_approved_for_what_is_left(
        lowering: Any, sim: Any, dialect: str) -> None:
    text, _ = _ask(lowering.url, dialect, True, "gov-open-first", REPLY)
    assert text == ANSWER
    requests = sim.requests()
    assert [r["vendor"] for r in requests] == ["openai"]  # approved for public/internal only
    assert SECRET not in vendor_bodies(sim) and ONE in vendor_bodies(sim)
    # what is left still counts: personal data keeps it away from the public-only provider
    sim.reset()
    with httpx.Client(base_url=lowering.url, timeout=30) as http:
        refused = http.post("/v1/messages", headers={"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"},
                            json={"model": "gov-none", "max_tokens": 50, "messages": [
                                {"role": "user", "content": f"{SECRET} mail jane.doe@example.com {REPLY}"}]})
    assert refused.status_code == 403 and "classified 'confidential'" in refused.json()["error"]["message"]
    assert SECRET not in refused.text and sim.requests() == []


def test_token_counting_sends_the_placeholder_not_the_secret(redacting: Any, sim: Any) -> None:
    with httpx.Client(base_url=redacting.url, timeout=30) as http:
        response = http.post("/v1/messages/count_tokens",
                             headers={"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"},
                             json={"model": "gov-secret", "messages": [{"role": "user", "content": SECRET}]})
    assert response.status_code == 200 and response.json()["input_tokens"] > 0
    assert sim.requests() and SECRET not in vendor_bodies(sim)


def test_a_placeholder_the_model_invents_is_left_alone(redacting: Any, sim: Any) -> None:
    text, _ = _ask(redacting.url, "openai", True, "gov-secret", f"{SECRET} [[reply:see {placeholder(9)} here]]")
    assert text == f"see {placeholder(9)} here"
    assert PATTERN.search(text) is not None


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_a_redacted_answer_cut_mid_stream_is_continued_elsewhere_without_the_secret(
        lowering: Any, sim: Any, dialect: str) -> None:
    sim.add_fault(vendor="anthropic", model="claude-opus-4-6", mode="cut", after_events=7)
    words = " ".join(f"word{i}" for i in range(20))
    text, _ = _ask(lowering.url, dialect, True, "gov-secret", f"[[reply:{SECRET} is the key, {words}]]")
    # the part before the cut, restored; then what the continuation wrote (the simulator's own words)
    assert text.startswith(f"{SECRET} is the key,") and "OUTLAST_SECRET" not in text
    vendors = [r["vendor"] for r in sim.requests()]
    assert vendors[0] == "anthropic" and "openai" in vendors  # continued on another provider
    continued = json.dumps(sim.requests(vendor="openai")[0]["body"])
    # given the prompt and the answer so far, both with the placeholder
    assert continued.count(f"{ONE} is the key") >= 2 and SECRET not in continued
    assert SECRET not in vendor_bodies(sim)
    stored = _stored(lowering)
    assert SECRET not in stored and ONE in stored
