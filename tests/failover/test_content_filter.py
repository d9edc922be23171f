"""An answer a vendor's content filter withholds (a content-filter stop before any content) is
``content_filtered``, not a blank answer: by default the caller gets the content-filter error in
its own dialect and no other provider is asked; with ``on_content_filtered: failover`` the next
candidate serves. Through a real gateway, the real adapters of all three wire formats and the
official SDKs; the filtering vendor is :mod:`tests.failover.filtering_upstream`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from outlast.serving import BackgroundServer
from tests.conftest import MASTER_KEY, PROVIDER_KEYS
from tests.failover.conftest import failover_document
from tests.failover.filtering_upstream import FilteringUpstream

VENDORS = ("openai", "anthropic", "gemini")
BASE = {"openai": "/openai/v1", "anthropic": "/anthropic", "gemini": "/gemini"}


@pytest.fixture(scope="module")
def filtering() -> Iterator[Any]:
    upstream = FilteringUpstream()
    with BackgroundServer(upstream) as server:
        server.upstream = upstream
        yield server


@pytest.fixture(scope="module")
def gateway(filtering: Any, sim_server: Any) -> Iterator[Any]:
    from outlast.app import build_gateway
    from outlast.config import validate

    document = failover_document(sim_server.url)
    for vendor in VENDORS:
        document["providers"][f"strict-{vendor}"] = {"kind": vendor, "base_url": filtering.url + BASE[vendor],
                                                    "api_key": PROVIDER_KEYS[vendor]}
        candidates = [f"strict-{vendor}/careful-1", "openai/gpt-5.1"]
        document["routes"][f"filtered-{vendor}"] = candidates  # on_content_filtered: return (the default)
        document["routes"][f"filtered-{vendor}-failover"] = {"candidates": candidates,
                                                             "on_content_filtered": "failover"}
    built = build_gateway(validate(document))
    with BackgroundServer(built) as server:
        server.gateway = built
        yield server


@pytest.fixture
def fresh(gateway: Any, filtering: Any, sim: Any) -> Any:
    """The simulator (the fallback), reset, with the filtering vendor's log and all health forgotten."""
    gateway.gateway.router.health.reset()
    filtering.upstream.requests.clear()
    return sim


def ask_openai(url: str, route: str, stream: bool) -> str:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=20)
    messages: Any = [{"role": "user", "content": "something a filter dislikes [[reply:but this is fine]]"}]
    if stream:
        return "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model=route, messages=messages, max_tokens=64, stream=True) if c.choices)
    return client.chat.completions.create(model=route, messages=messages, max_tokens=64).choices[0].message.content \
        or ""


def ask_anthropic(url: str, route: str, stream: bool) -> str:
    client = anthropic.Anthropic(base_url=url, api_key=MASTER_KEY, max_retries=0, timeout=20)
    messages: Any = [{"role": "user", "content": "something a filter dislikes [[reply:but this is fine]]"}]
    if stream:
        with client.messages.stream(model=route, max_tokens=64, messages=messages) as answer:
            return "".join(answer.text_stream)
    block = client.messages.create(model=route, max_tokens=64, messages=messages).content[0]
    assert block.type == "text"
    return block.text


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("vendor", VENDORS)
def test_a_filtered_answer_is_the_openai_callers_content_filter_error(gateway: Any, fresh: Any, filtering: Any,
                                                                      vendor: str, stream: bool) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask_openai(gateway.url, f"filtered-{vendor}", stream)
    assert caught.value.status_code == 400
    assert caught.value.code == "content_filter"
    assert "content filter" in caught.value.message and "no other candidate was asked" in caught.value.message
    assert [r["vendor"] for r in filtering.upstream.requests] == [vendor]
    assert fresh.requests() == []  # the fallback was not asked


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("vendor", VENDORS)
def test_a_filtered_answer_is_the_anthropic_callers_content_filter_error(gateway: Any, fresh: Any, filtering: Any,
                                                                         vendor: str, stream: bool) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask_anthropic(gateway.url, f"filtered-{vendor}", stream)
    assert caught.value.status_code == 400
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert f"strict-{vendor}/careful-1: content_filtered" in body["error"]["message"]
    assert [r["vendor"] for r in filtering.upstream.requests] == [vendor]
    assert fresh.requests() == []


@pytest.mark.parametrize("caller", ["openai", "anthropic"])
@pytest.mark.parametrize("vendor", VENDORS)
def test_with_failover_the_next_candidate_serves_a_filtered_answer(gateway: Any, fresh: Any, filtering: Any,
                                                                   vendor: str, caller: str) -> None:
    ask = ask_openai if caller == "openai" else ask_anthropic
    assert ask(gateway.url, f"filtered-{vendor}-failover", True) == "but this is fine"
    assert [r["vendor"] for r in filtering.upstream.requests] == [vendor]
    assert [(r["vendor"], r["model"]) for r in fresh.requests()] == [("openai", "gpt-5.1")]
