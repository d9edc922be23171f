"""Configuration: one YAML file, parsed once into validated, typed objects.

``load(path)`` reads ``outlast.yaml`` (or the file named by ``--config`` /
``OUTLAST_CONFIG``), substitutes ``${ENV}`` and ``${ENV:-default}`` references,
and validates it. Every problem is reported as a :class:`ConfigError` naming the
file, the field and what is wrong. With no file at all, :func:`from_environment`
finds providers from the usual variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from outlast.providers.base import Timeouts

ProviderKind = Literal["openai", "anthropic", "gemini"]
DEFAULT_MAX_BODY = 32 * 1024 * 1024
DEFAULT_DATA_CLASSES = ("public", "internal", "confidential", "secret")


class ConfigError(Exception):
    """The configuration cannot be used. ``str()`` is a message for a person."""


def http_url(value: str | None) -> str | None:
    """An http:// or https:// URL without its trailing slash (for ``base_url`` and ``public_url``)."""
    if value is not None and not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/") if value else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutsConfig(_Strict):
    """Seconds. ``total: null`` lets a long answer run as long as it keeps streaming."""

    connect: float = Field(10.0, gt=0)
    first_token: float = Field(60.0, gt=0)
    idle: float = Field(60.0, gt=0)
    total: float | None = Field(600.0, gt=0)

    def build(self) -> Timeouts:
        return Timeouts(self.connect, self.first_token, self.idle, self.total)


class ModelConfig(_Strict):
    """What one model can do, where the router needs to know (failover, continuation)."""

    prefill: bool | None = None  # accepts a conversation ending in an assistant turn to continue
    context_window: int | None = Field(None, gt=0)  # tokens
    probe: bool | None = None  # active probes of this model (default: the provider's ``probe``)
    probe_interval: float | None = Field(None, gt=0)  # seconds (default: the provider's)


class RouteDeadlinesConfig(_Strict):
    """Seconds. The first-token deadline adapts: ``multiplier`` x the target's recent p99,
    within ``first_token_floor`` and ``first_token_ceiling`` (default: the provider's
    ``timeouts.first_token``). ``total``: longest wait before the answer begins, retries included."""

    first_token_floor: float = Field(1.0, gt=0)
    first_token_ceiling: float | None = Field(None, gt=0)
    first_token_multiplier: float = Field(3.0, gt=0)
    total: float | None = Field(None, gt=0)


class RouteOptionsConfig(_Strict):
    """A route given as a mapping: ``{candidates: [...], retry_budget: 1, hedge_after: 2, ...}``."""

    tiers: list[int] = Field(default_factory=list)  # from candidates given as {target, tier}
    retry_budget: int = Field(1, ge=0)
    max_retry_after: float = Field(2.0, ge=0)
    deadlines: RouteDeadlinesConfig = RouteDeadlinesConfig()
    hedge_after: float | None = Field(None, gt=0)
    allow_downgrade: bool = True
    on_content_filtered: Literal["return", "failover"] = "return"
    continue_streams: bool = True


class BreakerConfig(_Strict):
    consecutive: int = Field(5, ge=1)
    failure_rate: float = Field(0.5, gt=0, le=1)
    min_requests: int = Field(10, ge=1)
    window: int = Field(10, ge=1)
    cooldown: float = Field(5.0, gt=0)
    max_cooldown: float = Field(20.0, gt=0)
    half_open_trials: int = Field(1, ge=1)
    auth_cooldown: float = Field(60.0, gt=0)


class RetryBudgetConfig(_Strict):
    ratio: float = Field(0.2, ge=0)  # retries allowed per request, on average
    min_per_second: float = Field(5.0, ge=0)


class FailoverConfig(_Strict):
    breaker: BreakerConfig = BreakerConfig()
    retry_budget: RetryBudgetConfig = RetryBudgetConfig()


class ProviderConfig(_Strict):
    kind: ProviderKind
    base_url: str | None = None
    api_key: SecretStr | None = None
    approved_for: tuple[str, ...] = DEFAULT_DATA_CLASSES
    status_feed: str | None = None
    # The status page's components (names or ids) that stand for this provider (docs/health.md);
    # empty: the page's components whose name has the word API.
    status_components: tuple[str, ...] = ()
    timeouts: TimeoutsConfig = TimeoutsConfig()
    headers: dict[str, str] = Field(default_factory=dict)
    # OpenAI-compatible servers disagree on the name of the output limit.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None
    # What its models can do: defaults for all, then per model name.
    prefill: bool | None = None
    context_window: int | None = Field(None, gt=0)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    # Active probes (docs/health.md): off unless asked for, since every probe is a billed request.
    probe: bool = False
    probe_interval: float | None = Field(None, gt=0)  # seconds (default: health.probes.interval)
    # Gemini only: a caller that did not ask for a stream is sent to :generateContent (one JSON answer)
    # instead of :streamGenerateContent; its first-token deadline then covers the whole answer.
    plain_json: bool = False

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return http_url(value)


class RetentionConfig(_Strict):
    """How long stored exchanges and conversations are kept; ``null``: for ever / no limit."""

    max_age_days: float | None = Field(None, gt=0)
    max_size_mb: float | None = Field(None, gt=0)


class WebhookConfig(_Strict):
    url: str
    format: Literal["json", "slack"] = "json"


class ProbesConfig(_Strict):
    """Active probes (docs/health.md). Which targets are probed is set per provider and model (``probe``)."""

    interval: float = Field(60.0, gt=0)  # seconds between two probes of one target
    jitter: float = Field(0.1, ge=0, lt=1)  # each interval is stretched or shrunk by up to this share
    timeout: float = Field(30.0, gt=0)  # seconds a probe may take, first byte to last


class HealthConfig(_Strict):
    """Outage detection (docs/health.md): seconds and ratios; the defaults suit most gateways."""

    enabled: bool = True
    tick: float = Field(5.0, gt=0)
    window: float = Field(30.0, gt=0)
    recovery_window: float = Field(300.0, gt=0)
    min_samples: int = Field(5, ge=1)
    open_rate: float = Field(0.25, gt=0, le=1)
    close_rate: float = Field(0.02, ge=0, le=1)
    major_rate: float = Field(0.8, gt=0, le=1)
    open_after: float = Field(5.0, ge=0)
    sustain: float = Field(15.0, ge=0)  # errors seen over this long before an incident opens
    sparse_window: float = Field(300.0, gt=0)  # judged on this window when `window` has too few samples
    identify_after: float = Field(60.0, ge=0)
    quiet_period: float = Field(600.0, ge=0)
    rate_limit_grace: float = Field(600.0, ge=0)
    latency_factor: float = Field(3.0, gt=1)
    latency_floor: float = Field(2.0, ge=0)
    report_min: int = Field(3, ge=1)
    report_factor: float = Field(3.0, gt=0)
    report_window: float = Field(900.0, gt=0)
    feed_interval: float = Field(60.0, gt=0)
    uptime_days: int = Field(90, ge=1)
    page_name: str = "outlast"
    # Where people reach this gateway, for the links in webhooks (default: the address `serve` listens on).
    public_url: str | None = None
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    probes: ProbesConfig = ProbesConfig()

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return http_url(value)


class GovernanceConfig(_Strict):
    """Data classes, virtual keys, audit (docs/governance.md). Classes default to the ones a
    finding raises a request to: secrets the highest, personal data the one below it."""

    classify: bool = True  # classify every request and route it only to approved providers
    secret_class: str | None = None
    personal_class: str | None = None
    personal_data: bool = True  # look for personal data as well as secrets
    # Replace detected secrets with placeholders before a request reaches any provider, and put
    # them back in the answer the caller receives (docs/governance.md, "Redaction").
    redact: bool = False
    # A redacted request is still routed by the class of what the client sent, unless this is set:
    # then by the class of what the provider actually receives.
    redaction_lowers_class: bool = False
    audit: bool = True  # a tamper-evident record of every routing decision, in the store
    audit_key: SecretStr | None = None  # HMAC key for the audit chain: forging it then needs this key too
    key_refresh: float = Field(1.0, gt=0)  # seconds between checks for created and revoked keys
    max_header_bytes: int = Field(64 * 1024, gt=0)


class LimitsConfig(_Strict):
    """Seconds the HTTP server gives a client (docs/configuration.md, Limits); slower ones get 408."""

    header_timeout: float = Field(10.0, gt=0)  # from connecting (or a later request's first byte) to its headers
    body_timeout: float = Field(30.0, gt=0)  # the longest silence while a request body arrives
    keep_alive: float = Field(5.0, gt=0)  # an idle connection between requests is closed after this


class Config(_Strict):
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    routes: dict[str, list[str]] = Field(default_factory=dict)
    route_options: dict[str, RouteOptionsConfig] = Field(default_factory=dict)  # from routes given as mappings
    failover: FailoverConfig = FailoverConfig()
    store: str | None = None
    state: str = "memory"
    master_key: SecretStr | None = None
    max_body_bytes: int = Field(DEFAULT_MAX_BODY, gt=0)
    limits: LimitsConfig = LimitsConfig()  # slow clients; header size: governance.max_header_bytes
    data_classes: tuple[str, ...] = DEFAULT_DATA_CLASSES
    record: bool = True  # store every exchange in `store` (docs/memory.md)
    retention: RetentionConfig = RetentionConfig()
    health: HealthConfig = HealthConfig()
    governance: GovernanceConfig = GovernanceConfig()

    @model_validator(mode="before")
    @classmethod
    def _route_mappings(cls, data: Any) -> Any:
        """A route is a list of candidates, or a mapping with ``candidates`` and options; the
        options move to ``route_options`` so that ``routes`` is always name -> candidates."""
        if not isinstance(data, dict) or not isinstance(data.get("routes"), dict):
            return data
        routes: dict[str, Any] = {}
        options: dict[str, Any] = dict(data.get("route_options") or {})
        for name, entry in data["routes"].items():
            if not isinstance(entry, dict):
                routes[name] = entry
                continue
            entry = dict(entry)
            raw = entry.pop("candidates", None)
            if not isinstance(raw, list):
                raise ValueError(f"routes.{name}.candidates: a list of 'provider/model' is required")
            candidates, tiers = [], []
            for i, candidate in enumerate(raw):
                if isinstance(candidate, dict):
                    unknown = set(candidate) - {"target", "tier"}
                    if unknown or not isinstance(candidate.get("target"), str):
                        raise ValueError(f"routes.{name}.candidates.{i}: expected 'provider/model' or "
                                         "{target: provider/model, tier: N}")
                    candidates.append(candidate["target"])
                    tiers.append(candidate.get("tier", 0))
                else:
                    candidates.append(candidate)
                    tiers.append(0)
            if any(tiers):
                entry["tiers"] = tiers
            routes[name] = candidates
            options[name] = entry
        return {**data, "routes": routes, "route_options": options}

    @model_validator(mode="after")
    def _check_routes(self) -> Config:
        for name, candidates in self.routes.items():
            if not candidates:
                raise ValueError(f"routes.{name}: needs at least one candidate 'provider/model'")
            for i, candidate in enumerate(candidates):
                provider, sep, model = candidate.partition("/")
                if not sep or not model:
                    raise ValueError(
                        f"routes.{name}.{i}: {candidate!r} is not 'provider/model'"
                    )
                if provider not in self.providers:
                    known = ", ".join(sorted(self.providers)) or "none configured"
                    raise ValueError(
                        f"routes.{name}.{i}: unknown provider {provider!r} (providers: {known})"
                    )
        for name, options in self.route_options.items():
            if name not in self.routes:
                raise ValueError(f"route_options.{name}: no route of that name (routes: "
                                 f"{', '.join(self.routes) or 'none configured'})")
            if options.tiers and len(options.tiers) != len(self.routes[name]):
                raise ValueError(f"routes.{name}.tiers: {len(options.tiers)} tiers for "
                                 f"{len(self.routes[name])} candidates; give one tier per candidate")
        if self.state not in ("", "memory") and not self.state.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"state: expected 'memory' or a redis:// URL, got {self.state!r}")
        for name, provider_config in self.providers.items():
            if provider_config.plain_json and provider_config.kind != "gemini":
                raise ValueError(f"providers.{name}.plain_json: only a gemini provider has it")
            unknown = [c for c in provider_config.approved_for if c not in self.data_classes]
            if unknown:
                raise ValueError(
                    f"providers.{name}.approved_for: unknown data class {unknown[0]!r} "
                    f"(data_classes: {', '.join(self.data_classes)})"
                )
        return self

    def route_items(self) -> list[tuple[str, list[str]]]:
        return list(self.routes.items())


# --------------------------------------------------------------------------- loading

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ``${NAME}`` and ``${NAME:-default}`` in every string of a parsed document."""
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{path or 'value'}: environment variable {name} is not set")

        return _ENV_REF.sub(replace, value)
    if isinstance(value, dict):
        return {k: substitute(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, env, f"{path}.{i}") for i, v in enumerate(value)]
    return value


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a configuration file. Raises :class:`ConfigError`."""
    env = os.environ if env is None else env
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{file}{where}: invalid YAML: {problem}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{file}: expected a mapping at the top level, got {type(document).__name__}")
    try:
        document = substitute(document, env)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from None
    return validate(document, source=str(file))


def validate(document: Mapping[str, Any], *, source: str = "config") -> Config:
    try:
        return Config.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + "; ".join(_describe(e) for e in exc.errors())) from None


def _describe(error: Mapping[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "extra_forbidden":
        message = "unknown field"
    message = message.removeprefix("Value error, ")
    if location and not message.startswith(location):
        return f"{location}: {message}"
    return message


# Model-name families used when no file says otherwise: callers keep their usual names.
_FAMILIES = {
    "anthropic": ("claude-*",),
    "openai": ("gpt-*", "o1*", "o3*", "o4*", "chatgpt-*", "text-embedding-*"),
    "gemini": ("gemini-*",),
}


def from_environment(env: Mapping[str, str] | None = None) -> Config:
    """A configuration from ``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``, ``GEMINI_API_KEY`` and
    ``OLLAMA_HOST``: each present variable adds a provider, and model names route to the
    provider of their family (``claude-*`` to Anthropic, ``gpt-*`` to OpenAI, ...); any other
    name goes to the local Ollama when there is one."""
    env = os.environ if env is None else env
    providers: dict[str, dict[str, Any]] = {}
    routes: dict[str, list[str]] = {}
    if env.get("ANTHROPIC_API_KEY"):
        providers["anthropic"] = {"kind": "anthropic", "api_key": env["ANTHROPIC_API_KEY"]}
        if env.get("ANTHROPIC_BASE_URL"):
            providers["anthropic"]["base_url"] = env["ANTHROPIC_BASE_URL"]
    if env.get("OPENAI_API_KEY"):
        providers["openai"] = {"kind": "openai", "api_key": env["OPENAI_API_KEY"]}
        if env.get("OPENAI_BASE_URL"):
            providers["openai"]["base_url"] = env["OPENAI_BASE_URL"]
    if env.get("GEMINI_API_KEY"):
        providers["gemini"] = {"kind": "gemini", "api_key": env["GEMINI_API_KEY"]}
    if env.get("OLLAMA_HOST"):
        host = env["OLLAMA_HOST"]
        if not host.startswith(("http://", "https://")):
            host = "http://" + host
        providers["local"] = {"kind": "openai", "base_url": host.rstrip("/") + "/v1"}
    for name, patterns in _FAMILIES.items():
        if name in providers:
            for pattern in patterns:
                routes[pattern] = [f"{name}/{{model}}"]
    if "local" in providers:
        routes["*"] = ["local/{model}"]
    document: dict[str, Any] = {"providers": providers, "routes": routes}
    if env.get("OUTLAST_MASTER_KEY"):
        document["master_key"] = env["OUTLAST_MASTER_KEY"]
    return validate(document, source="environment")


def resolve(path: str | None, env: Mapping[str, str] | None = None) -> Config:
    """The configuration in force: ``path``, else ``$OUTLAST_CONFIG``, else ``./outlast.yaml``
    if it exists, else the environment."""
    env = os.environ if env is None else env
    chosen = path or env.get("OUTLAST_CONFIG")
    if chosen:
        return load(chosen, env)
    if Path("outlast.yaml").is_file():
        return load("outlast.yaml", env)
    return from_environment(env)


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("OUTLAST_DATA_DIR"):
        return Path(env["OUTLAST_DATA_DIR"])
    import platformdirs

    return Path(platformdirs.user_data_dir("outlast"))
