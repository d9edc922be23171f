"""The simulated vendors: their wire format, their models and what each model can do.

Each vendor is served under its own path prefix (``/anthropic``, ``/openai``, ``/gemini``, ``/local``, and any
extra vendor a scenario names).  Model capabilities differ the way the real ones do: context windows, and
whether an assistant prefill may end the conversation (Claude 4.6 and later refuse it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FORMATS = ("openai", "anthropic", "gemini")


@dataclass(frozen=True)
class ModelSpec:
    id: str
    display_name: str
    context_window: int
    max_output: int = 32_000
    prefill: bool = True  # may the conversation end with an assistant turn?
    created: int = 1_767_225_600  # 2026-01-01, epoch seconds


@dataclass(frozen=True)
class StatusComponent:
    id: str
    name: str


@dataclass(frozen=True)
class StatusPageSpec:
    page_id: str
    name: str
    url: str
    components: tuple[StatusComponent, ...]
    style: str = "statuspage"  # or "incidentio": summary without incidents, maintenances and group fields


@dataclass
class Vendor:
    name: str
    format: str
    models: dict[str, ModelSpec]
    requires_key: bool = True
    flavour: str = ""  # "ollama" changes a few wordings and ids of the OpenAI format
    status_page: StatusPageSpec | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _models(*specs: ModelSpec) -> dict[str, ModelSpec]:
    return {spec.id: spec for spec in specs}


CLAUDE_PAGE = StatusPageSpec(
    page_id="tymt9n04zgry", name="Claude", url="https://status.claude.com",
    components=(
        StatusComponent("rwppv331jlwc", "claude.ai"),
        StatusComponent("0qbwn08sd68x", "Claude Console (platform.claude.com)"),
        StatusComponent("k8w3r06qmzrp", "Claude API (api.anthropic.com)"),
        StatusComponent("yyzkbfz2thpt", "Claude Code"),
        StatusComponent("bpp5gb3hpjcl", "Claude Cowork"),
        StatusComponent("0scnb50nvy53", "Claude for Government"),
    ))
OPENAI_PAGE = StatusPageSpec(
    page_id="01JMDK9XYNY6RXSED6SDWW50WY", name="OpenAI", url="https://status.openai.com/", style="incidentio",
    components=(
        StatusComponent("01JMXBRMFE6N2NNT7DG6XZQ6PW", "Images"),
        StatusComponent("01JMXBRMFEBEKP1QPAWR08X5G9", "Chat Completions"),
        StatusComponent("01JMXBRMFEY0NC9DJ52Q1S9D2E", "Responses"),
        StatusComponent("01JMXBRMFEJ10ZNTTPNF13YZ0H", "ChatGPT"),
        StatusComponent("01KMP3KP5MGE23B80K1EK4S8PV", "Codex API"),
    ))
GEMINI_PAGE = StatusPageSpec(
    page_id="gmn4ai2stdio", name="Google AI Studio", url="https://aistudio.google.com/status",
    components=(
        StatusComponent("gmnapi00000a", "Gemini API"),
        StatusComponent("gmnstudio00b", "Google AI Studio"),
    ))


def default_vendors() -> dict[str, Vendor]:
    claude = 200_000
    return {
        "anthropic": Vendor("anthropic", "anthropic", _models(
            ModelSpec("claude-opus-4-6", "Claude Opus 4.6", claude, 128_000, prefill=False),
            ModelSpec("claude-sonnet-4-6", "Claude Sonnet 4.6", claude, 64_000, prefill=False),
            ModelSpec("claude-opus-4-8", "Claude Opus 4.8", claude, 128_000, prefill=False),
            ModelSpec("claude-haiku-4-5-20251001", "Claude Haiku 4.5", claude, 64_000),
            ModelSpec("claude-sonnet-5", "Claude Sonnet 5", claude, 128_000, prefill=False),
        ), status_page=CLAUDE_PAGE),
        "openai": Vendor("openai", "openai", _models(
            ModelSpec("gpt-5.1", "GPT-5.1", 400_000, 128_000),
            ModelSpec("gpt-5", "GPT-5", 400_000, 128_000),
            ModelSpec("gpt-4o-mini", "GPT-4o mini", 128_000, 16_384),
            ModelSpec("gpt-4.1", "GPT-4.1", 1_047_576, 32_768),
        ), status_page=OPENAI_PAGE),
        "gemini": Vendor("gemini", "gemini", _models(
            ModelSpec("gemini-2.5-pro", "Gemini 2.5 Pro", 1_048_576, 65_536),
            ModelSpec("gemini-2.5-flash", "Gemini 2.5 Flash", 1_048_576, 65_536),
        ), status_page=GEMINI_PAGE),
        "local": Vendor("local", "openai", _models(
            ModelSpec("qwen3:8b", "qwen3:8b", 8_192, 8_192),
            ModelSpec("llama3.2", "llama3.2", 131_072, 8_192),
            ModelSpec("my-local-model", "my-local-model", 32_768, 8_192),
        ), requires_key=False, flavour="ollama"),
    }


def vendor_from_document(name: str, document: dict[str, Any]) -> Vendor:
    """An extra vendor named in a scenario: ``{format: openai, models: [id | {id, context_window, ...}]}``."""
    fmt = document.get("format", "openai")
    if fmt not in FORMATS:
        raise ValueError(f"vendor {name!r}: format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    models: dict[str, ModelSpec] = {}
    for entry in document.get("models") or []:
        if isinstance(entry, str):
            entry = {"id": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise ValueError(f"vendor {name!r}: each model is a name or a mapping with an id")
        models[entry["id"]] = ModelSpec(
            id=entry["id"], display_name=str(entry.get("display_name", entry["id"])),
            context_window=int(entry.get("context_window", 128_000)),
            max_output=int(entry.get("max_output", 32_000)), prefill=bool(entry.get("prefill", True)))
    if not models:
        raise ValueError(f"vendor {name!r}: needs at least one model")
    page = None
    if "status_page" in document:
        spec = document["status_page"] or {}
        components = tuple(StatusComponent(f"{name[:6]}{i:06d}", str(c))
                           for i, c in enumerate(spec.get("components") or ["API"]))
        page = StatusPageSpec(page_id=f"{name}-page", name=str(spec.get("name", name)),
                              url=str(spec.get("url", f"https://status.{name}.example")), components=components)
    return Vendor(name, fmt, models, requires_key=bool(document.get("requires_key", True)),
                  flavour=str(document.get("flavour", "")), status_page=page)
