from __future__ import annotations

from outlast.routing.plan import RouteTable, Target

ROUTES = [
    ("claude-opus-4-6", ["anthropic/claude-opus-4-6", "openai/gpt-5.1", "local/qwen3:8b"]),
    ("claude-*", ["anthropic/{model}", "local/qwen3:8b"]),
    ("*", ["local/{model}"]),
]


def table() -> RouteTable:
    return RouteTable(ROUTES, ["anthropic", "openai", "local"])


def test_exact_route_wins_over_patterns() -> None:
    assert table().plan("claude-opus-4-6") == (
        Target("anthropic", "claude-opus-4-6"), Target("openai", "gpt-5.1"), Target("local", "qwen3:8b"))


def test_glob_route_substitutes_the_requested_name() -> None:
    assert table().plan("claude-haiku-4-5") == (Target("anthropic", "claude-haiku-4-5"), Target("local", "qwen3:8b"))


def test_patterns_are_tried_in_declaration_order() -> None:
    assert table().plan("my-local-model") == (Target("local", "my-local-model"),)


def test_direct_provider_slash_model_when_no_route_matches() -> None:
    narrow = RouteTable([("claude-*", ["anthropic/{model}"])], ["anthropic", "openai"])
    assert narrow.plan("openai/gpt-4.1") == (Target("openai", "gpt-4.1"),)
    assert narrow.plan("unknown/gpt-4.1") == ()
    assert narrow.plan("gpt-4.1") == ()


def test_names_lists_only_exact_routes() -> None:
    assert table().names() == ["claude-opus-4-6"]
