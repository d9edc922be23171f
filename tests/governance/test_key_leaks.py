"""No key ever leaves: a gateway configured with known provider keys, a master key, an audit key
and a virtual key serves traffic (answers, and every kind of upstream failure), its data is
exported every way there is, and then every output is scanned for the keys: logs at DEBUG, the
store's files, error bodies and headers, exports, metrics, health, the status page and its API,
the dashboard, and outlast's own API. A finding names the key and where it was."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from outlast.cli import main

PROVIDER_KEYS = {
    "anthropic": "sk-ant-api03-LeakCanaryAnthropic7f3a9c1e5b-AAAA",
    "openai": "sk-proj-LeakCanaryOpenAI2d8b4f6a0c-BBBB",
    "gemini": "AIzaSyLeakCanaryGemini5e1c7a3b9d-CCCCC",
    "local": "local-LeakCanaryLocal9a4c2e8f6b-DDDD",
}
MASTER_KEY = "olm-LeakCanaryMaster3c7e1a5b9d-EEEE"
AUDIT_KEY = "audit-LeakCanaryAuditHmac8b2d6f0a4c-FFFF"
ANTHROPIC = {"anthropic-version": "2023-06-01"}


def document(sim_url: str, data: Path) -> dict[str, Any]:
    keys = PROVIDER_KEYS
    return {
        "providers": {
            "anthropic": {"kind": "anthropic", "base_url": f"{sim_url}/anthropic", "api_key": keys["anthropic"]},
            "openai": {"kind": "openai", "base_url": f"{sim_url}/openai/v1", "api_key": keys["openai"]},
            "gemini": {"kind": "gemini", "base_url": f"{sim_url}/gemini", "api_key": keys["gemini"]},
            "local": {"kind": "openai", "base_url": f"{sim_url}/local/v1", "api_key": keys["local"]},
        },
        "routes": {
            "to-anthropic": ["anthropic/claude-sonnet-4-6"],
            "to-openai": ["openai/gpt-5.1"],
            "to-gemini": ["gemini/gemini-2.5-flash"],
            "to-local": ["local/qwen3:8b"],
            "everywhere": ["anthropic/claude-opus-4-6", "openai/gpt-5.1", "gemini/gemini-2.5-flash",
                           "local/qwen3:8b"],
        },
        "master_key": MASTER_KEY,
        "store": f"sqlite:///{data / 'outlast.db'}",
        "governance": {"audit_key": AUDIT_KEY, "redact": True},
    }


class Scan:
    """Everything the gateway said or wrote, by where it was found."""

    def __init__(self) -> None:
        self.outputs: list[tuple[str, str]] = []

    def add(self, where: str, text: str | bytes) -> None:
        self.outputs.append((where, text.decode("utf-8", "replace") if isinstance(text, bytes) else text))

    def response(self, where: str, response: httpx.Response) -> httpx.Response:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.add(f"{where} (HTTP {response.status_code})", f"{headers}\n\n{response.text}")
        return response

    def findings(self, secrets: dict[str, str]) -> list[str]:
        found = []
        for where, text in self.outputs:
            for name, secret in secrets.items():
                if secret in text:
                    found.append(f"{name} found in {where}")
        return found


def secrets_to_find(virtual_keys: list[str]) -> dict[str, str]:
    secrets = {f"{name} provider key": key for name, key in PROVIDER_KEYS.items()}
    # The distinctive middle of each key too: a key cut, masked or re-encoded still shows it.
    secrets.update({f"{name} provider key (part)": re.search(r"LeakCanary\w+?[0-9a-f]{10}", key).group()  # type: ignore
                    for name, key in PROVIDER_KEYS.items()})
    secrets["master key"] = MASTER_KEY
    secrets["audit key"] = AUDIT_KEY
    for i, key in enumerate(virtual_keys):
        secrets[f"virtual key {i + 1}"] = key
        secrets[f"virtual key {i + 1} (its secret part)"] = key.split("_", 2)[2]
    return secrets


def _traffic(url: str, gateway: Any, sim: Any, scan: Scan, virtual: str, limited: str) -> None:
    master = {"authorization": f"Bearer {MASTER_KEY}"}
    with httpx.Client(base_url=url, timeout=60) as http:
        def chat(where: str, route: str, key: dict[str, str], stream: bool = False, text: str = "hello") -> None:
            scan.response(where, http.post("/v1/chat/completions", headers=key, json={
                "model": route, "stream": stream, "messages": [{"role": "user", "content": text}]}))

        def messages(where: str, route: str, key: dict[str, str], stream: bool = False, text: str = "hello") -> None:
            scan.response(where, http.post("/v1/messages", headers={**ANTHROPIC, **key}, json={
                "model": route, "stream": stream, "max_tokens": 60, "messages": [{"role": "user", "content": text}]}))

        team = {"x-api-key": virtual}
        for route in ("to-anthropic", "to-openai", "to-gemini", "to-local"):
            chat(f"answer from {route}", route, master, text=f"[[reply:fine from {route}]]")
            messages(f"streamed answer from {route}", route, team, stream=True)
        # a secret in the prompt (redacted on its way out) and a declared class
        messages("redacted request", "to-anthropic", team,
                 text="[[reply:key AKIAIOSFODNN7EXAMPLE noted]] AKIAIOSFODNN7EXAMPLE")
        # every kind of upstream failure, alone and with failover
        faults: list[tuple[str, dict[str, Any]]] = [
            ("openai", {"mode": "auth"}), ("anthropic", {"mode": "auth"}), ("gemini", {"mode": "auth"}),
            ("local", {"mode": "auth"}), ("anthropic", {"mode": "status", "status": 500}),
            ("openai", {"mode": "status", "status": 401}), ("gemini", {"mode": "status", "status": 403}),
            ("openai", {"mode": "malformed"}), ("anthropic", {"mode": "cut", "after_events": 4}),
            ("local", {"mode": "no_terminator"}), ("openai", {"mode": "bad_event", "at_event": 2}),
            ("gemini", {"mode": "reset"}), ("anthropic", {"mode": "blank"}),
            ("anthropic", {"mode": "status", "status": 429, "retry_after": 30}),
            # an upstream that echoes the key it was sent in its error (some proxies and local servers do)
            ("openai", {"mode": "status", "status": 401,
                        "message": f"Incorrect API key provided: {PROVIDER_KEYS['openai']}"}),
            ("local", {"mode": "status", "status": 500, "message": f"bad header Bearer {PROVIDER_KEYS['local']}"}),
        ]
        for vendor, fault in faults:
            sim.add_fault(vendor=vendor, model="*", **fault)
            route = f"to-{vendor}"
            chat(f"{vendor} {fault['mode']} (chat)", route, master)
            messages(f"{vendor} {fault['mode']} (messages, streamed)", route, team, stream=True,
                     text="[[reply:" + " ".join(f"w{i}" for i in range(30)) + "]]")
            chat(f"{vendor} {fault['mode']} with failover (streamed)", "everywhere", team, stream=True)
            sim.clear_faults()
            gateway.router.health.reset()  # each fault meets healthy providers: no breaker skips its path
        gateway_health = http.get("/healthz")
        scan.response("/healthz during traffic", gateway_health)
        # everything down at once
        for vendor in ("anthropic", "openai", "gemini", "local"):
            sim.add_fault(vendor=vendor, model="*", mode="status", status=503)
        messages("everything down", "everywhere", team)
        chat("everything down (streamed)", "everywhere", master, stream=True)
        sim.clear_faults()
        # the client's own mistakes and refusals
        scan.response("wrong client key", http.post("/v1/messages", headers={**ANTHROPIC, "x-api-key": "olk_x_y"},
                                                    json={"model": "to-anthropic", "max_tokens": 5, "messages": []}))
        scan.response("no client key", http.post("/v1/chat/completions", json={"model": "to-openai"}))
        scan.response("no such endpoint", http.post("/v2/nothing", headers=master))
        scan.response("bad body", http.post("/v1/chat/completions", headers=master, content=b"{nope"))
        scan.response("unknown route", http.post("/v1/chat/completions", headers=team, json={
            "model": "nope", "messages": [{"role": "user", "content": "hi"}]}))
        for _ in range(3):
            scan.response("rate limited", http.post("/v1/messages", headers={**ANTHROPIC, "x-api-key": limited},
                                                    json={"model": "to-anthropic", "max_tokens": 5, "messages": [
                                                        {"role": "user", "content": "hi"}]}))
        scan.response("count_tokens", http.post("/v1/messages/count_tokens", headers={**ANTHROPIC, **team}, json={
            "model": "to-anthropic", "messages": [{"role": "user", "content": "count me"}]}))
        scan.response("models", http.get("/v1/models", headers=team))
        scan.response("report", http.post("/outlast/v1/reports", headers=master,
                                          json={"component": "anthropic", "note": "slow today"}))


def _pages(url: str, scan: Scan) -> None:
    public = ["/healthz", "/metrics", "/status", "/api/v2/summary.json", "/api/v2/status.json",
              "/api/v2/components.json", "/api/v2/incidents.json", "/api/v2/incidents/unresolved.json",
              "/history.atom", "/openapi.json", "/", "/ui/login"]
    with httpx.Client(base_url=url, timeout=30) as http:
        for path in public:
            scan.response(path, http.get(path))
        api = {"authorization": f"Bearer {MASTER_KEY}"}
        for path in ("/outlast/v1/health", "/outlast/v1/incidents", "/outlast/v1/reports", "/outlast/v1/usage"):
            scan.response(path, http.get(path, headers=api))
        login = scan.response("/ui/login (sign in)", http.post("/ui/login", data={"key": MASTER_KEY}))
        assert login.status_code == 303, "the dashboard did not let the admin in"
        failed_login = scan.response("/ui/login (wrong key)", httpx.post(f"{url}/ui/login", data={"key": "nope"}))
        assert failed_login.status_code == 401
        pages = ["/ui/", "/ui/incidents", "/ui/providers", "/ui/conversations", "/ui/usage",
                 "/ui/conversations?q=fine"]
        for path in pages:
            response = scan.response(path, http.get(path))
            assert response.status_code == 200, f"{path}: {response.status_code}"
        conversations = set(re.findall(r'href="(/ui/conversations/[^"]+)"', http.get("/ui/conversations").text))
        assert conversations, "no conversation was recorded"
        for path in sorted(conversations):
            for suffix in ("", "/export.md", "/export.json"):
                scan.response(path + suffix, http.get(path + suffix))
        for incident in http.get("/outlast/v1/incidents", headers=api).json()["incidents"]:
            scan.response(f"/ui/incidents/{incident['id']}", http.get(f"/ui/incidents/{incident['id']}"))


def _cli(config: str, scan: Scan, tmp_path: Path) -> None:
    runner = CliRunner()
    exports = tmp_path / "exports"
    (exports / "md").mkdir(parents=True)
    commands = [
        ["conversations", "list"], ["conversations", "search", "fine"],
        ["conversations", "export", "--all", "--format", "json", "-o", str(exports / "all.json")],
        ["conversations", "export", "--all", "--format", "md", "-o", str(exports / "md")],
        ["conversations", "export", "--all", "--format", "jsonl"],
        ["audit", "export"], ["audit", "export", "-o", str(exports / "audit.jsonl")], ["audit", "verify"],
        ["report", "usage"], ["report", "usage", "--json"], ["keys", "list", "--all"],
    ]
    for args in commands:
        result = runner.invoke(main, [*args, "--config", config])
        assert result.exit_code == 0, f"outlast {' '.join(args)}: {result.output}"
        scan.add(f"outlast {' '.join(args)}", result.output)
    for path in sorted(exports.rglob("*")):
        if path.is_file():
            scan.add(f"export file {path.relative_to(tmp_path)}", path.read_bytes())


def test_no_key_appears_in_any_output(sim: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from outlast.app import build_gateway
    from outlast.config import validate
    from outlast.governance.keys import create_key, revoke_key
    from outlast.serving import BackgroundServer

    caplog.set_level(logging.DEBUG)  # every logger, outlast's included, at DEBUG
    data = tmp_path / "data"
    data.mkdir()
    config = document(sim.url, data)
    config_file = tmp_path / "outlast.yaml"
    config_file.write_text(yaml.safe_dump(config))
    gateway: Any = build_gateway(validate(config), data_directory=data)
    scan = Scan()
    with BackgroundServer(gateway) as server:
        engine = gateway.governance.engine
        virtual, _ = create_key(engine, "payments")
        limited, _ = create_key(engine, "ops", rpm=1)
        revoked, record = create_key(engine, "gone")
        assert revoke_key(engine, record.id)
        _traffic(server.url, gateway, sim, scan, virtual, limited)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            scan.response("revoked key", http.post("/v1/messages", headers={**ANTHROPIC, "x-api-key": revoked}, json={
                "model": "to-anthropic", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        assert gateway.sinks[0].wait_ingested()
        gateway.governance.audit.flush()
        _pages(server.url, scan)
    # after shutdown: the exports, then the store on disk (database, its journals, the recorder's journal)
    _cli(str(config_file), scan, tmp_path)
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        scan.add(f"file {path.relative_to(data)}", path.read_bytes())
    # the traffic really covered failures: errors went back, and some answers were served by failover
    statuses = {where.rsplit("(HTTP ", 1)[1].rstrip(")") for where, _ in scan.outputs if "(HTTP " in where}
    assert {"200", "401", "429", "400", "404"} <= statuses and statuses & {"503", "529", "502"}
    assert any("x-outlast-fallback: true" in text for _, text in scan.outputs)
    assert any(where.startswith("file ") and where.endswith(".db") for where, _ in scan.outputs)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    assert any(r.name.startswith("outlast") and r.levelno == logging.WARNING for r in caplog.records)
    scan.add("logs", "\n".join(formatter.format(r) for r in caplog.records))
    sent = sim.requests()
    assert len(sent) > 40  # traffic reached the vendors
    # Sanity: the scan does find a key where one is (the vendor saw its own, in a request header).
    vendor_headers = "\n".join(str(r["headers"]) for r in sent)
    assert PROVIDER_KEYS["openai"] in vendor_headers and PROVIDER_KEYS["local"] in vendor_headers
    assert virtual not in vendor_headers and MASTER_KEY not in vendor_headers  # client keys stay at the gateway
    # an upstream that echoed its key had it cut out of what the caller saw
    echoed = [text for where, text in scan.outputs if where.startswith("local status (chat)")]
    assert echoed and "[local provider key]" in echoed[0]
    found = scan.findings(secrets_to_find([virtual, limited, revoked]))
    assert not found, "keys leaked:\n" + "\n".join(found)
