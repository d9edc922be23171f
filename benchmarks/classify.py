"""Classification cost on the hot path: microseconds per typical request and per Claude-Code-sized (80 KB) one.

    .venv/bin/python benchmarks/classify.py

The typical request is a captured Claude Code turn (system prompt, a user message); the 80 KB one adds
tool results holding outlast's own source files, the way a coding agent's context fills up.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from outlast.dialects import anthropic_messages
from outlast.policy.classify import Classifier, DataClasses, request_texts

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT.parent / "shared" / "fixtures" / "clients" / "cc_tool_bash.request.json"


def typical_body() -> dict:
    if FIXTURE.is_file():  # a captured Claude Code turn; its tool list is summarised in the capture
        captured = json.loads(FIXTURE.read_text())["body"]
        return {"model": "claude-sonnet-4-6", "max_tokens": 1024, "system": captured["system"],
                "messages": captured["messages"]}
    return {"model": "claude-sonnet-4-6", "max_tokens": 1024, "system": "You are a helpful assistant. " * 40,
            "messages": [{"role": "user", "content": "Summarise the attached design in five bullet points. " * 10}]}


def large_body(size: int = 80_000) -> dict:
    body = typical_body()
    sources = sorted((ROOT / "src" / "outlast").rglob("*.py"))
    messages = list(body["messages"])
    total = len(json.dumps(body))
    i = 0
    while total < size:
        text = sources[i % len(sources)].read_text()[:6000]
        tool_id = f"toolu_{i:04d}"
        messages.append({"role": "assistant", "content": [
            {"type": "tool_use", "id": tool_id, "name": "Read",
             "input": {"file_path": str(sources[i % len(sources)])}}]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": text}]})
        total += len(text) + 200
        i += 1
    messages.append({"role": "user", "content": "Now refactor the router."})
    return {**body, "messages": messages}


def measure(body: dict, rounds: int, *, warm: bool) -> float:
    """Best of five runs: µs per classification. ``warm``: the conversation was seen before (the
    next turn of an agent); otherwise every text is new to the classifier (a cold cache)."""
    best = float("inf")
    for _ in range(5):
        requests = [anthropic_messages.parse_request(json.loads(json.dumps(body)), {}) for _ in range(rounds)]
        classifier = Classifier(DataClasses())
        if warm:
            classifier.classify(requests[0])
        start = time.perf_counter()
        for request in requests:
            if not warm:
                classifier = Classifier(DataClasses())
            classifier.classify(request)
        best = min(best, (time.perf_counter() - start) / rounds)
    return best * 1e6


def main() -> None:
    classifier = Classifier(DataClasses())
    for name, body, rounds in (("typical", typical_body(), 500), ("80 KB", large_body(), 20)):
        request = anthropic_messages.parse_request(body, {})
        chars = sum(len(t) for t in request_texts(request))
        found = classifier.classify(request).data_class
        print(f"{name:8s} {chars:7d} chars of text: {measure(body, rounds, warm=False):8.1f} µs new, "
              f"{measure(body, rounds, warm=True):8.1f} µs seen before; class={found}")


if __name__ == "__main__":
    main()
