"""The Gemini-format vendor over plain HTTP: generateContent, streamGenerateContent (SSE and JSON array)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

KEY = "gemini-sim-key"
WEATHER_TOOL = {"functionDeclarations": [{
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}


@pytest.fixture
def http(sim: Any) -> Any:
    with httpx.Client(base_url=f"{sim.url}/gemini/v1beta", headers={"x-goog-api-key": KEY}, timeout=10) as client:
        yield client


def ask(text: str) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def test_generate_content_shape(http: httpx.Client) -> None:
    body = {**ask("[[reply:Bonjour.]]"), "systemInstruction": {"parts": [{"text": "Be brief."}]}}
    data = http.post("/models/gemini-2.5-flash:generateContent", json=body).json()
    candidate = data["candidates"][0]
    assert candidate["content"] == {"parts": [{"text": "Bonjour."}], "role": "model"}
    assert candidate["finishReason"] == "STOP" and candidate["index"] == 0
    usage = data["usageMetadata"]
    assert usage["candidatesTokenCount"] == 2
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert data["modelVersion"] == "gemini-2.5-flash" and data["responseId"]


def test_sse_stream_is_data_only_and_matches_json(http: httpx.Client) -> None:
    body = ask("Explain retries.")
    whole = http.post("/models/gemini-2.5-pro:generateContent", json=body).json()
    response = http.post("/models/gemini-2.5-pro:streamGenerateContent", params={"alt": "sse"}, json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in response.text.split("\r\n\r\n") if f]
    assert all(f.startswith("data: ") and "\nevent:" not in f for f in frames)
    chunks = [json.loads(f[6:]) for f in frames]
    assert len(chunks) >= 2
    text = "".join(p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert text == whole["candidates"][0]["content"]["parts"][0]["text"]
    assert [c["candidates"][0].get("finishReason") for c in chunks][-1] == "STOP"
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    assert chunks[-1]["usageMetadata"] == whole["usageMetadata"]


def test_stream_without_alt_sse_is_one_json_array(http: httpx.Client) -> None:
    response = http.post("/models/gemini-2.5-flash:streamGenerateContent", json=ask("[[reply:a b c d e f]]"))
    chunks = response.json()
    assert isinstance(chunks, list) and len(chunks) == 2
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == "a b c d e f"


def test_function_call_and_response(http: httpx.Client) -> None:
    body = {**ask("Weather in Quito?"), "tools": [WEATHER_TOOL]}
    data = http.post("/models/gemini-2.5-flash:generateContent", json=body).json()
    part = data["candidates"][0]["content"]["parts"][0]
    assert part["functionCall"]["name"] == "get_weather"
    assert isinstance(part["functionCall"]["args"]["city"], str)
    assert data["candidates"][0]["finishReason"] == "STOP"
    follow = {"contents": [*body["contents"], data["candidates"][0]["content"],
                           {"role": "user", "parts": [{"functionResponse": {
                               "name": "get_weather", "response": {"forecast": "12 C and clear"}}}]}],
              "tools": [WEATHER_TOOL]}
    answer = http.post("/models/gemini-2.5-flash:generateContent", json=follow).json()
    assert "12 C and clear" in answer["candidates"][0]["content"]["parts"][0]["text"]
    none = {**body, "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}
    assert "text" in http.post("/models/gemini-2.5-flash:generateContent", json=none).json()[
        "candidates"][0]["content"]["parts"][0]


def test_max_output_tokens_truncates(http: httpx.Client) -> None:
    body = {**ask("A long answer please."), "generationConfig": {"maxOutputTokens": 2}}
    data = http.post("/models/gemini-2.5-flash:generateContent", json=body).json()
    assert data["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert data["usageMetadata"]["candidatesTokenCount"] == 2


def test_key_in_query_and_errors(sim: Any, http: httpx.Client) -> None:
    url = f"{sim.url}/gemini/v1beta/models/gemini-2.5-flash:generateContent"
    assert httpx.post(url, params={"key": KEY}, json=ask("hi")).status_code == 200
    missing = httpx.post(url, json=ask("hi"))
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"
    unknown = http.post("/models/gemini-9-ultra:generateContent", json=ask("hi"))
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {
        "code": 404, "status": "NOT_FOUND",
        "message": "models/gemini-9-ultra is not found for API version v1beta, or is not supported for "
                   "generateContent. Call ListModels to see the list of available models and their supported methods."}
    empty = http.post("/models/gemini-2.5-flash:generateContent", json={})
    assert empty.status_code == 400 and empty.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_models_and_count_tokens(http: httpx.Client) -> None:
    models = http.get("/models").json()["models"]
    assert [m["name"] for m in models] == ["models/gemini-2.5-pro", "models/gemini-2.5-flash"]
    assert "generateContent" in models[0]["supportedGenerationMethods"]
    assert http.get("/models/gemini-2.5-pro").json()["inputTokenLimit"] == 1_048_576
    count = http.post("/models/gemini-2.5-pro:countTokens", json=ask("count these words please")).json()
    assert count["totalTokens"] > 0
