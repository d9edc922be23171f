"""Governance in the gateway: who is calling (virtual keys, rate limits), what the request is
(data class), where it may go (the router's predicate) and the record of where it went (audit).

``Governance.from_config(config)`` builds it; the gateway calls :meth:`admit` for each request,
passes :attr:`policy` to the router, adds :attr:`listener` to the router's listeners and
:meth:`stamp` before its sinks.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outlast.governance.audit import AuditKey, AuditWriter, JournaledAudit, resolve_key
from outlast.governance.keys import PREFIX, KeyRing
from outlast.governance.ratelimit import RateLimiter, limiter_for
from outlast.policy.approval import CURRENT, DECLARED_HEADER, Admission, Policy
from outlast.policy.classify import Classifier, DataClasses
from outlast.policy.detectors import SECRET
from outlast.policy.redact import RequestFilter, Restore, redact
from outlast.policy.scrub import Scrubber

if TYPE_CHECKING:
    import sqlalchemy as sa

    from outlast.config import Config
    from outlast.dialects.canonical import Request
    from outlast.routing.exchange import Attempt, Exchange

log = logging.getLogger("outlast.governance")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is turned away before routing: ``status`` and an error ``kind``."""

    status: int
    kind: str
    message: str
    retry_after: float | None = None


UNAUTHORIZED = Refusal(401, "authentication_error",
                       "missing or invalid API key: send an outlast key as 'x-api-key' or 'Authorization: Bearer'")
KEY_REQUIRED = Refusal(401, "authentication_error",
                       "missing or invalid API key: this gateway has virtual keys, so every request needs one "
                       "(an olk_... key from 'outlast keys create'), as 'x-api-key' or 'Authorization: Bearer'")
KEYS_UNKNOWN = Refusal(503, "api_error",
                       "cannot check API keys: no master_key is configured and the virtual keys cannot be read "
                       "from the store yet; try again shortly")


def presented_key(headers: dict[str, str]) -> str | None:
    presented = headers.get("x-api-key")
    if presented is None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        presented = token.strip()
    return presented


def configured_secrets(config: Config) -> dict[str, str]:
    """The secrets the configuration holds, by a name that may be shown instead of each."""
    secrets = {f"{name} provider key": p.api_key.get_secret_value()
               for name, p in config.providers.items() if p.api_key is not None}
    for name, value in (("master key", config.master_key), ("audit key", config.governance.audit_key)):
        if value is not None:
            secrets[name] = value.get_secret_value()
    return secrets


class Governance:
    def __init__(self, config: Config, engine: sa.Engine | None, *, store: Any = None,
                 data_directory: Path | None = None) -> None:
        from outlast.config import data_dir

        gov = config.governance
        self.config = config
        self.engine = engine
        self._store = store
        self.data_directory = data_directory if data_directory is not None else data_dir()
        master = config.master_key.get_secret_value() if config.master_key is not None else None
        self.master_key = master.encode() if master else None
        classes = DataClasses(tuple(config.data_classes))
        classifier = Classifier(classes, secret_class=gov.secret_class, personal_class=gov.personal_class,
                                personal=gov.personal_data)
        # The router's predicate. With governance.classify off it applies no approvals, but a
        # virtual key's routes and class limit still hold (outlast.policy.approval).
        self.policy = Policy(classifier, {name: p.approved_for for name, p in config.providers.items()},
                             enforce=gov.classify)
        self.keys = KeyRing(engine, refresh=gov.key_refresh)
        self.limiter: RateLimiter = limiter_for(config.state)
        # The audit chain's key is found at its first write (resolve_key): it may need the store.
        self.audit: AuditWriter | JournaledAudit | None = None
        if gov.audit and engine is not None:
            self.audit = AuditWriter(engine, self._audit_key, spool=self.data_directory)
        self.scrubber = Scrubber(configured_secrets(config))
        self.listener = AuditListener(self)
        # The gateway's request filter: secrets to placeholders before routing (None: off).
        self.redactor: RequestFilter | None = self.redact if gov.redact else None

    @classmethod
    def from_config(cls, config: Config, data_directory: Path | None = None) -> Governance:
        from outlast.store import store_url
        from outlast.store.sql import SqlStore

        store = SqlStore(store_url(config.store, data_directory))
        return cls(config, store.engine, store=store, data_directory=data_directory)

    def journal_audit(self, journal: Callable[[dict[str, Any]], None],
                      wait_stored: Callable[[float], bool] | None = None) -> None:
        """Journal audit records with the exchanges (the recorder's ``note``) instead of writing them
        from a thread of this process: called before :meth:`start` when the gateway records."""
        if isinstance(self.audit, AuditWriter):
            self.audit = JournaledAudit(journal, wait_stored=wait_stored, leftover=self.audit)

    def _audit_key(self) -> AuditKey:
        secret = self.config.governance.audit_key
        return resolve_key(secret.get_secret_value() if secret is not None else None, self.data_directory,
                           self.engine, create=True)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._store is not None:
            try:
                await asyncio.to_thread(self._store.migrate)
            except Exception:
                # Keys are still looked for (without a master key, requests wait for them: 503), and
                # audit records are kept and spooled until they can be written.
                log.exception("governance: the store cannot be migrated; virtual keys and audit are unavailable")
        await self.keys.start()
        if self.audit is not None:
            if self.config.governance.audit_key is None and self.engine is not None \
                    and self.engine.dialect.name != "sqlite":
                log.warning("governance.audit_key is not set: this replica signs the shared audit log with a key "
                            "of its own (in %s); replicas sharing a store must share a key: set "
                            "governance.audit_key", self.data_directory)
            self.audit.start()

    async def aclose(self) -> None:
        await self.keys.aclose()
        await self.limiter.aclose()
        if self.audit is not None:
            await asyncio.to_thread(self.audit.close)

    # ------------------------------------------------------------------ requests

    async def admit(self, headers: dict[str, str]) -> Admission | Refusal:
        """Authenticate and rate-limit one request; the admission is current for its task."""
        presented = presented_key(headers)
        admission = Admission(declared=headers.get(DECLARED_HEADER) or None)
        if presented is not None and presented.startswith(PREFIX):
            key = await self.keys.check_fresh(presented)
            if key is None:
                return UNAUTHORIZED
            admission.key_id, admission.team = key.id, key.team
            admission.max_class, admission.routes = key.max_class, key.routes
            if key.rpm is not None:
                wait = await self.limiter.hit(key.id, key.rpm)
                if wait is not None:
                    return Refusal(429, "rate_limit_error",
                                   f"this key is limited to {key.rpm} requests a minute; try again in "
                                   f"{max(1, round(wait))} s", retry_after=wait)
        elif self.master_key is not None:
            if presented is None or not hmac.compare_digest(presented.encode(), self.master_key):
                return UNAUTHORIZED
        elif self.engine is not None and not self.keys.loaded:
            return KEYS_UNKNOWN  # there may be keys: admitting anyone would skip their limits
        elif self.keys.any:
            # No master key, but virtual keys exist (revoked ones too): without a key, or with
            # anything else, a caller would escape every key's routes, class and rate limits.
            return KEY_REQUIRED
        CURRENT.set(admission)
        return admission

    def use_routes(self, route_of: Callable[[str], str | None]) -> None:
        """How the policy learns which route a model resolves to, for keys limited to routes
        (``route_of(model)``: the route's name, or the pattern that matched; None if none)."""
        self.policy.route_of = route_of

    def redact(self, request: Request) -> tuple[Request, Restore | None]:
        """``request`` with its secrets replaced by placeholders, and what restores them in the
        answer (``None``: nothing to restore). The request keeps the data class of what the client
        sent, unless ``governance.redaction_lowers_class``: then it is classified on what is left."""
        policy = self.policy
        admission = policy.admission(request)
        classification = admission.classification
        if classification is not None:
            if not any(f.category == SECRET for f in classification.findings):
                return request, None  # the classifier found no secret: nothing to scan again
        elif admission.refused is not None:
            return request, None  # refused: it goes nowhere
        found = redact(request)  # not classified (governance.classify off): redaction finds its own
        if found is None:
            return request, None
        redacted, redaction = found
        admission = policy.substitute(request, redacted, reclassify=self.config.governance.redaction_lowers_class)
        admission.redaction = redaction
        return redacted, redaction.restore

    def metric_lines(self) -> list[str]:
        """Prometheus lines for /metrics: audit records waiting for the store, and failed writes."""
        audit = self.audit
        if audit is None:
            return []
        return [
            "# HELP outlast_audit_records_unwritten Audit records kept (in memory or spooled) until the store "
            "takes them.",
            "# TYPE outlast_audit_records_unwritten gauge",
            f"outlast_audit_records_unwritten {audit.unwritten}",
            "# HELP outlast_audit_write_failures_total Attempts to append audit records that failed.",
            "# TYPE outlast_audit_write_failures_total counter",
            f"outlast_audit_write_failures_total {audit.failures}",
        ]

    def stamp(self, exchange: Exchange) -> None:
        admission = CURRENT.get()
        if admission is None:
            return
        exchange.key_id, exchange.team = admission.key_id, admission.team
        if admission.classification is not None:
            exchange.data_class = admission.classification.data_class


class StampSink:
    """First of the gateway's sinks: puts the key, team and data class on the exchange the
    recorder is about to store."""

    def __init__(self, governance: Governance) -> None:
        self.governance = governance

    async def commit(self, exchange: Exchange) -> None:
        self.governance.stamp(exchange)
        admission = CURRENT.get()
        if admission is not None and admission.redaction is not None and exchange.response is not None:
            # The caller got the secrets back; the store keeps the answer as the provider gave it.
            exchange.response = admission.redaction.hide_response(exchange.response)
        # A streamed answer is committed at its last event, before the router has finished with it:
        # its audit record is made now, so that a journaled one goes into the journal in the same
        # write as the exchange, durable before the answer's last byte.
        self.governance.listener.committing(exchange)


class AuditListener:
    """A router listener: one audit record per routing decision, made when the exchange is
    committed (a streamed answer, at its last event) or, if it is not, when the router is done."""

    def __init__(self, governance: Governance) -> None:
        self.governance = governance
        self._early: set[str] = set()  # exchanges recorded at their commit, until the router is done

    def committing(self, exchange: Exchange) -> None:
        if exchange.ended is not None or self.governance.audit is None:
            return  # the router is done with it (a plain answer, a failure): recorded already
        self._early.add(exchange.id)
        self._record(exchange)

    def attempt_finished(self, exchange: Exchange, attempt: Attempt) -> None:
        if attempt.error is not None and self.governance.scrubber:
            # Before anything describes it (the caller's error, the log, the store): an upstream
            # may have echoed the key it was sent.
            self.governance.scrubber.error(attempt.error)

    def exchange_finished(self, exchange: Exchange) -> None:
        self.governance.stamp(exchange)
        if exchange.id in self._early:
            self._early.discard(exchange.id)
            return
        self._record(exchange)

    def _record(self, exchange: Exchange) -> None:
        governance = self.governance
        if governance.audit is None:
            return
        admission = CURRENT.get()
        classification = admission.classification if admission is not None else None
        error = exchange.error
        governance.audit.add({
            "exchange_id": exchange.id,
            "key_id": exchange.key_id,
            "team": exchange.team,
            "who": exchange.team or ("master key" if governance.master_key else "anonymous"),
            "dialect": exchange.dialect,
            "model": exchange.requested_model,
            "data_class": exchange.data_class,
            "declared": classification.declared if classification is not None else None,
            "found": classification.kinds() if classification is not None else [],
            "redacted": list(admission.redaction.kinds) if admission is not None and admission.redaction else [],
            "candidates": [str(t) for t in exchange.plan],
            "excluded": dict(admission.excluded) if admission is not None else {},
            "refused": admission.refused if admission is not None else None,
            "attempts": [{"target": str(a.target), "purpose": a.purpose, "outcome": a.outcome}
                         for a in exchange.attempts],
            "served_by": str(exchange.served_by) if exchange.served_by is not None else None,
            "fallback": exchange.fallback,
            "error": type(error).__name__ if error is not None else None,
        }, at=exchange.created)
