"""Which providers a request may go to: its data class against each provider's ``approved_for``.

:class:`Policy` is the router's allowed-target predicate (``policy(request, target) -> bool``),
so the same rule holds for the first choice, retries, hedges, failover and continuations: the
router only ever walks the candidates the predicate kept. When it keeps none, the router asks
``policy.explain(request, targets)`` for the caller's error: the class found, why, and what each
candidate is approved for; never the sensitive text.

Who is asking and what they declared travel in an :class:`Admission` set by the gateway for the
request's task (a context variable): the key's team and limits, the ``x-outlast-data-class``
header, and, once classified, the decision the audit log records.

A virtual key's limits hold whether or not requests are classified (``governance.classify``): its
routes are compared with the route the request's model resolves to (``route_of``: an exact name,
or the pattern that matched, such as ``gpt-*``), and a key with a ``max_class`` has its requests
classified even when classification is otherwise off, since that limit cannot be kept without it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from outlast.dialects.canonical import Request
from outlast.policy.classify import Classification, Classifier, UnknownDataClass
from outlast.policy.redact import Redaction
from outlast.routing.plan import Target

DECLARED_HEADER = "x-outlast-data-class"


@dataclass(slots=True)
class Admission:
    """One request's governance facts, filled in as it goes (the gateway, then the policy)."""

    key_id: str | None = None  # None: the master key, or no key configured
    team: str | None = None
    max_class: str | None = None  # the key may not send data above this class
    routes: tuple[str, ...] = ()  # the key may only call these route names (empty: any)
    declared: str | None = None
    request: Request | None = None  # the request classified below
    classification: Classification | None = None
    refused: str | None = None  # why the request itself was refused (key limits, unknown class)
    excluded: dict[str, str] = field(default_factory=dict)  # target -> why the policy excluded it
    redaction: Redaction | None = None  # the secrets swapped for placeholders before routing (policy.redact)


CURRENT: contextvars.ContextVar[Admission | None] = contextvars.ContextVar("outlast_admission", default=None)


class Policy:
    """``Policy(classifier, {"anthropic": ("public", "internal")})``: the allowed-target predicate.

    ``enforce=False`` (``governance.classify: false``): providers' ``approved_for`` is not applied
    and requests are not classified, except those of a key limited to a class; a key's limits
    still hold. ``route_of(model)`` names the route a model resolves to (None: none does)."""

    def __init__(self, classifier: Classifier, approved: Mapping[str, Sequence[str]], *, enforce: bool = True,
                 route_of: Callable[[str], str | None] | None = None) -> None:
        self.classifier = classifier
        self.classes = classifier.classes
        self.approved = {name: frozenset(classes) for name, classes in approved.items()}
        self.enforce = enforce
        self.route_of = route_of
        self._last: Admission | None = None  # for callers outside a gateway request (tests, tools)

    def admission(self, request: Request) -> Admission:
        """The request's admission, classified once however many candidates are asked about."""
        admission = CURRENT.get()
        if admission is None:
            admission = self._last
            if admission is None or admission.request is not request:
                admission = self._last = Admission()
        if admission.request is not request:
            admission.request = request
            admission.excluded = {}
            admission.refused = None
            admission.classification = None
            if self.enforce or admission.max_class is not None:
                try:
                    admission.classification = self.classifier.classify(request, admission.declared)
                except UnknownDataClass:
                    admission.refused = (f"the declared {DECLARED_HEADER} {admission.declared!r} is not a data "
                                         f"class here ({', '.join(self.classes.names)})")
                    return admission
            found = admission.classification.data_class if admission.classification is not None else None
            if found is not None and admission.max_class is not None \
                    and self.classes.rank(found) > self.classes.rank(admission.max_class):
                admission.refused = f"this key may send data up to {admission.max_class!r}"
            elif admission.routes and not self.key_may_call(admission.routes, request.model):
                admission.refused = (f"this key may not call {request.model!r} "
                                     f"(its routes: {', '.join(admission.routes)})")
        return admission

    def key_may_call(self, routes: Sequence[str], model: str) -> bool:
        """Whether a key limited to ``routes`` may call ``model``: the model is one of them, or
        the route it resolves to is (``gpt-*`` for ``gpt-5.1-mini`` when that pattern routes it)."""
        if model in routes:
            return True
        route = self.route_of(model) if self.route_of is not None else None
        return route is not None and route in routes

    def substitute(self, original: Request, redacted: Request, *, reclassify: bool = False) -> Admission:
        """The router will be given ``redacted`` in place of ``original``: it keeps the class of
        ``original`` (what the client sent), or with ``reclassify`` is classified on what is left."""
        admission = self.admission(original)
        if not reclassify:
            admission.request = redacted
        return admission

    def __call__(self, request: Request, target: Target) -> bool:
        admission = self.admission(request)
        key = str(target)
        if admission.refused is not None:
            admission.excluded[key] = admission.refused
            return False
        if not self.enforce:
            return True
        assert admission.classification is not None
        found = admission.classification.data_class
        approved = self.approved.get(target.provider, frozenset())
        if found in approved:
            return True
        admission.excluded[key] = (f"{target.provider} is approved for {', '.join(sorted(approved, key=self._rank))}"
                                   if approved else f"{target.provider} is approved for no data class")
        return False

    def _rank(self, name: str) -> int:
        try:
            return self.classes.rank(name)
        except UnknownDataClass:
            return len(self.classes.names)

    def explain(self, request: Request, targets: Sequence[Target]) -> str:
        """The caller's error when no candidate was allowed: names the class and the reasons."""
        admission = self.admission(request)
        classification = admission.classification
        if admission.refused is not None and classification is None:
            return f"request refused: {admission.refused}"
        assert classification is not None
        head = f"this request is classified {classification.data_class!r} ({classification.reason()})"
        if admission.refused is not None:
            return f"{head}; {admission.refused}, so it was not sent to any provider"
        reasons = "; ".join(f"{t} ({admission.excluded.get(str(t), 'excluded')})" for t in targets)
        return (f"{head}; not approved for {classification.data_class!r} data, so the request was never sent to: "
                f"{reasons}")
