"""The control API's request log and state, deterministic answers, and the ``outlast sim`` command."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner

from outlast.sim.answers import Conversation, answer, schema_value
from outlast.sim.cli import sim_command
from outlast.sim.testing import running_sim
from tests.sim.conftest import KEY


def test_request_log_records_what_each_vendor_received(sim: Any) -> None:
    with httpx.Client(base_url=sim.url) as http:
        http.post("/openai/v1/chat/completions?trace=1", headers={"authorization": f"Bearer {KEY}", "X-Custom": "A"},
                  json={"model": "gpt-5", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
        http.get("/anthropic/v1/models", headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"})
        http.post("/gemini/v1beta/models/gemini-2.5-pro:generateContent", params={"key": "g"},
                  content=b"not json")
    records = sim.requests()
    assert [r["vendor"] for r in records] == ["openai", "anthropic", "gemini"]
    first = records[0]
    assert (first["method"], first["path"], first["query"]) == ("POST", "/openai/v1/chat/completions", "trace=1")
    assert first["headers"]["x-custom"] == "A" and first["body"]["stream"] is True
    assert (first["model"], first["stream"], first["status"], first["fault"]) == ("gpt-5", True, 200, None)
    assert first["time"] > 0 and first["clock"] >= 0
    assert records[1]["endpoint"] == "models"
    assert (records[2]["status"], records[2]["body"], records[2]["model"]) == (400, "not json", "gemini-2.5-pro")
    assert [r["vendor"] for r in sim.requests("anthropic")] == ["anthropic"]
    since = httpx.get(f"{sim.url}/_sim/requests", params={"since": records[1]["seq"]}).json()
    assert [r["vendor"] for r in since] == ["gemini"]


def test_state_describes_vendors_faults_and_clock(sim: Any) -> None:
    sim.add_fault(vendor="openai", mode="slow", ttft_ms=5)
    state = sim.state()
    assert state["vendors"]["local"] == {"format": "openai", "models": ["qwen3:8b", "llama3.2", "my-local-model"],
                                         "requires_key": False, "prefix": "/local"}
    assert state["vendors"]["gemini"]["format"] == "gemini"
    assert [f["mode"] for f in state["faults"]] == ["slow"]
    assert state["scenario"] is None and state["clock"]["time_scale"] == 1.0
    sim.reset()
    assert sim.state()["faults"] == [] and sim.requests() == []


def test_unknown_paths_and_control_endpoints(sim: Any) -> None:
    assert httpx.get(f"{sim.url}/nowhere/v1/models").status_code == 404
    assert httpx.get(f"{sim.url}/_sim/nothing").status_code == 404
    assert httpx.post(f"{sim.url}/_sim/faults", content=b"{").status_code == 400


def test_pace_slows_streams_only_when_asked(sim: Any) -> None:
    assert httpx.post(f"{sim.url}/_sim/pace", json={"ttft_ms": 600, "tokens_per_s": 1000}).status_code == 200
    client = openai.OpenAI(base_url=f"{sim.url}/openai/v1", api_key=KEY, max_retries=0)
    started = time.monotonic()
    client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 0.45  # JSON answers are not paced
    started = time.monotonic()
    chunks = list(client.chat.completions.create(model="gpt-5", stream=True,
                                                 messages=[{"role": "user", "content": "hi"}]))
    assert time.monotonic() - started >= 0.59 and len(chunks) > 3
    assert httpx.post(f"{sim.url}/_sim/pace", json={"speed": 1}).status_code == 400


def conv(text: str, **kwargs: Any) -> Conversation:
    return Conversation(model="m", last_user_text=text, input_chars=len(text),
                        fingerprint=repr((text, sorted(kwargs.items()))).encode(), **kwargs)


def test_answers_are_deterministic_per_request_and_seed() -> None:
    assert answer(conv("hello"), 0).text == answer(conv("hello"), 0).text
    assert answer(conv("hello"), 0).text != answer(conv("hello"), 1).text
    assert answer(conv("hello"), 0).text != answer(conv("hello!"), 0).text
    reply = answer(conv("hello"), 0)
    assert reply.output_tokens == (len(reply.text) + 3) // 4 and reply.stop == "end"


def test_same_seed_gives_same_answer_over_http() -> None:
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": "What is resilience?"}]}
    texts = []
    for seed in (7, 7, 8):
        with running_sim(seed=seed) as sim:
            response = httpx.post(f"{sim.url}/openai/v1/chat/completions", json=body,
                                  headers={"authorization": f"Bearer {KEY}"})
            texts.append(response.json()["choices"][0]["message"]["content"])
    assert texts[0] == texts[1] != texts[2]


def test_tool_arguments_follow_the_schema() -> None:
    schema = {"type": "object", "required": ["city", "days", "units", "tags", "opts", "ok"],
              "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 3},
                             "units": {"enum": ["metric", "imperial"]}, "tags": {"type": "array",
                                                                                 "items": {"type": "string"}},
                             "opts": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]},
                             "ok": {"type": "boolean"}, "optional": {"type": "string"}}}
    value = schema_value(schema, b"\x01\x02\x03\x04")
    assert set(value) == {"city", "days", "units", "tags", "opts", "ok"}
    assert isinstance(value["city"], str) and value["days"] >= 3 and value["units"] == "metric"
    assert isinstance(value["tags"][0], str) and isinstance(value["opts"]["x"], float)
    assert isinstance(value["ok"], bool)


@pytest.mark.parametrize(("text", "choice", "expected"), [
    ("Weather?", None, "first"), ("[[tool:second]]", None, "second"), ("[[reply:no]]", None, None),
    ("Weather?", "none", None), ("[[reply:no]]", "any", "first"), ("hi", "second", "second"),
])
def test_tool_choice(text: str, choice: str | None, expected: str | None) -> None:
    tools = [("first", {"type": "object"}), ("second", {"type": "object"})]
    reply = answer(conv(text, tools=tools, tool_choice=choice), 0)
    assert (reply.tool.name if reply.tool else None) == expected
    assert reply.stop == ("tool" if expected else "end")


def test_cli_help_and_bad_scenario() -> None:
    runner = CliRunner()
    help_text = runner.invoke(sim_command, ["--help"]).output
    for option in ("--host", "--port", "--scenario", "--seed", "--time-scale"):
        assert option in help_text
    assert sim_command.name == "sim"
    result = runner.invoke(sim_command, ["--scenario", "no-such-thing", "--port", "1"])
    assert result.exit_code == 2 and "no scenario 'no-such-thing'" in result.output
