from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from outlast.cli import main
from outlast.config import ConfigError, from_environment, load, resolve

GOOD = """
providers:
  anthropic: {kind: anthropic, api_key: "${ANTHROPIC_API_KEY}", approved_for: [public, internal, confidential],
              status_feed: "https://status.claude.com/api/v2/summary.json"}
  openai:    {kind: openai, api_key: "${OPENAI_API_KEY}", approved_for: [public, internal]}
  local:     {kind: openai, base_url: "http://127.0.0.1:11434/v1/",
              approved_for: [public, internal, confidential, secret]}
routes:
  claude-opus-4-6: [anthropic/claude-opus-4-6, anthropic/claude-sonnet-4-6, openai/gpt-5.1, local/qwen3:8b]
store: "sqlite:///outlast.db"
state: "memory"
master_key: "${OUTLAST_MASTER_KEY:-sk-default-master}"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "outlast.yaml"
    path.write_text(text)
    return path


def test_design_sketch_loads_with_env_substitution(tmp_path: Path) -> None:
    config = load(write(tmp_path, GOOD), {"ANTHROPIC_API_KEY": "sk-ant-1", "OPENAI_API_KEY": "sk-oa-2"})
    assert config.providers["anthropic"].api_key is not None
    assert config.providers["anthropic"].api_key.get_secret_value() == "sk-ant-1"
    assert config.providers["local"].base_url == "http://127.0.0.1:11434/v1"  # trailing slash dropped
    assert config.routes["claude-opus-4-6"][2] == "openai/gpt-5.1"
    assert config.master_key is not None and config.master_key.get_secret_value() == "sk-default-master"
    assert config.providers["openai"].approved_for == ("public", "internal")


def test_secrets_do_not_show_in_the_config_repr(tmp_path: Path) -> None:
    config = load(write(tmp_path, GOOD), {"ANTHROPIC_API_KEY": "sk-ant-secret-1", "OPENAI_API_KEY": "x"})
    assert "sk-ant-secret-1" not in repr(config)
    assert "sk-ant-secret-1" not in str(config.model_dump())


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (GOOD, {"OPENAI_API_KEY": "x"},
         "providers.anthropic.api_key: environment variable ANTHROPIC_API_KEY is not set"),
        ("providers: {a: {kind: mistral}}", {}, "providers.a.kind: Input should be 'openai', 'anthropic' or 'gemini'"),
        ("providers: {a: {kind: openai, api_kye: x}}", {}, "providers.a.api_kye: unknown field"),
        ("providers: {a: {kind: openai, base_url: ftp://x}}", {}, "providers.a.base_url: must be an http"),
        ("routes: {m: [nowhere/model]}", {}, "routes.m.0: unknown provider 'nowhere'"),
        ("providers: {a: {kind: openai}}\nroutes: {m: [a]}", {}, "routes.m.0: 'a' is not 'provider/model'"),
        ("providers: {a: {kind: openai}}\nroutes: {m: []}", {}, "routes.m: needs at least one candidate"),
        ("providers: {a: {kind: openai, approved_for: [top]}}", {}, "unknown data class 'top'"),
        ("providers: {a: {kind: openai, timeouts: {connect: -1}}}", {}, "providers.a.timeouts.connect"),
        ("providers: [1, 2]", {}, "providers: Input should be a valid dictionary"),
        ("- just\n- a list", {}, "expected a mapping at the top level"),
        ("providers:\n  a: {kind: openai\n", {}, "invalid YAML"),
        ("max_body_bytes: lots", {}, "max_body_bytes: Input should be a valid integer"),
        ("state: reddis://127.0.0.1", {}, "state: expected 'memory' or a redis:// URL, got 'reddis://127.0.0.1'"),
        ("providers: {a: {kind: openai}}\nroutes: {m: [a/x]}\nroute_options: {n: {hedge_after: 1}}", {},
         "route_options.n: no route of that name (routes: m)"),
        ("providers: {a: {kind: openai}}\nroutes: {m: [a/x, a/y]}\nroute_options: {m: {tiers: [0]}}", {},
         "routes.m.tiers: 1 tiers for 2 candidates"),
        ("providers: {a: {kind: openai, plain_json: true}}", {}, "providers.a.plain_json: only a gemini provider"),
    ],
)
def test_bad_config_names_file_field_and_problem(tmp_path: Path, text: str, env: dict[str, str],
                                                 expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path, env)
    message = str(caught.value)
    assert message.startswith(str(path))
    assert expected in message


def test_yaml_error_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "providers:\n  a: {kind: openai\nroutes: {}\n")
    with pytest.raises(ConfigError, match=r"outlast\.yaml:\d+:\d+: invalid YAML"):
        load(path, {})


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "nope.yaml", {})
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"providers: \xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(bad, {})


def test_environment_finds_providers_and_family_routes() -> None:
    config = from_environment({"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "b", "OLLAMA_HOST": "127.0.0.1:11434"})
    assert set(config.providers) == {"anthropic", "openai", "local"}
    assert config.providers["local"].base_url == "http://127.0.0.1:11434/v1"
    assert config.routes["claude-*"] == ["anthropic/{model}"]
    assert config.routes["gpt-*"] == ["openai/{model}"]
    assert config.routes["*"] == ["local/{model}"]
    assert "gemini-*" not in config.routes


def test_resolve_prefers_explicit_path_then_env_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "providers: {x: {kind: openai}}")
    assert set(resolve(None, {"OUTLAST_CONFIG": str(path)}).providers) == {"x"}
    assert set(resolve(str(path), {"OUTLAST_CONFIG": "/nonexistent"}).providers) == {"x"}


def test_config_check_command(tmp_path: Path) -> None:
    runner = CliRunner()
    good = write(tmp_path, GOOD)
    result = runner.invoke(main, ["config", "check", str(good)],
                           env={"ANTHROPIC_API_KEY": "sk-ant-hidden", "OPENAI_API_KEY": "sk-oa-hidden"})
    assert result.exit_code == 0, result.output
    assert "3 providers, 1 routes" in result.output
    assert "anthropic/claude-opus-4-6 -> anthropic/claude-sonnet-4-6" in result.output
    assert "sk-ant-hidden" not in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: {a: {kind: nope}}")
    result = runner.invoke(main, ["config", "check", str(bad)])
    assert result.exit_code == 2
    assert "providers.a.kind" in result.output


def test_gemini_plain_json_reaches_the_provider(tmp_path: Path) -> None:
    from outlast.providers.registry import build_provider

    config = load(write(tmp_path, "providers: {g: {kind: gemini, plain_json: true}, h: {kind: gemini}}"), {})
    assert build_provider("g", config.providers["g"]).plain_json is True  # type: ignore[attr-defined]
    assert build_provider("h", config.providers["h"]).plain_json is False  # type: ignore[attr-defined]
