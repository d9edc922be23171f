"""outlast's own status page data in Atlassian Statuspage v2's shape (summary, status, components,
incidents, unresolved incidents) and its Atom incident history, so tools that read vendors' pages
can read outlast's. Field names and enumerations follow the real documents in
``shared/fixtures/status/``; the page is built from the health service, never stored."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from outlast.health.incidents import Incident, stamp

if TYPE_CHECKING:
    from outlast.health.service import HealthService

SEVERITY = ("none", "minor", "major", "critical")
DESCRIPTION = {"none": "All Systems Operational", "minor": "Minor Service Outage", "major": "Partial System Outage",
               "critical": "Major Service Outage"}
FROM_COMPONENT = {"operational": "none", "under_maintenance": "none", "degraded_performance": "minor",
                  "partial_outage": "major", "major_outage": "critical"}
CREATED = "2026-01-01T00:00:00.000Z"


def short_id(*parts: str) -> str:
    digest = hashlib.blake2b(":".join(parts).encode(), digest_size=8).digest()
    n = int.from_bytes(digest, "big")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return "".join(alphabet[(n >> (5 * i)) % 36] for i in range(12))


def page_id(health: HealthService) -> str:
    return short_id("page", health.config.page_name)


def component_states(health: HealthService) -> list[tuple[str, str]]:
    """(name, status) of every component, providers first, each followed by its models."""
    states = {name: s.status for name, s in health.detector.components.items()}
    names = health.components()
    order = sorted(names, key=lambda n: (n.split("/", 1)[0], "/" in n, n))
    return [(name, states.get(name, "operational")) for name in order]


def page(health: HealthService, base_url: str = "") -> dict[str, Any]:
    updated = max([i.updates[-1].at for i in health.detector.incidents if i.updates], default=None)
    return {"id": page_id(health), "name": health.config.page_name, "url": base_url + "/status",
            "time_zone": "Etc/UTC", "updated_at": stamp(updated if updated is not None else health.clock())}


def page_status(health: HealthService) -> dict[str, str]:
    worst = "none"
    for _, status in component_states(health):
        worst = max(worst, FROM_COMPONENT.get(status, "none"), key=SEVERITY.index)
    for incident in health.detector.incidents:
        if not incident.resolved:
            worst = max(worst, incident.impact if incident.impact in SEVERITY else "minor", key=SEVERITY.index)
    return {"id": page_id(health), "indicator": worst, "description": DESCRIPTION[worst]}


def _component(name: str, status: str, position: int, pid: str, updated: str | None) -> dict[str, Any]:
    return {"id": short_id("component", name), "name": name, "status": status, "created_at": CREATED,
            "updated_at": updated, "position": position, "description": None, "showcase": True,
            "start_date": "2026-01-01", "group_id": None, "page_id": pid, "group": False,
            "only_show_if_degraded": False}


def components(health: HealthService) -> list[dict[str, Any]]:
    pid = page_id(health)
    updated = stamp(health.clock())
    return [_component(name, status, position, pid, updated)
            for position, (name, status) in enumerate(component_states(health), start=1)]


def incident_document(incident: Incident, pid: str | None = None, statuses: dict[str, str] | None = None,
                      base_url: str = "") -> dict[str, Any]:
    statuses = statuses or {}
    affected = [{"id": short_id("component", c), "name": c,
                 "status": statuses.get(c, "operational") if not incident.resolved else "operational"}
                for c in incident.components]
    updates = []
    for seq in range(len(incident.updates) - 1, -1, -1):
        u = incident.updates[seq]
        at = stamp(u.at)
        updates.append({"id": short_id("update", incident.id, str(seq)), "incident_id": incident.id,
                        "status": u.status, "body": u.body, "created_at": at, "updated_at": at, "display_at": at,
                        "affected_components": None, "deliver_notifications": True, "custom_tweet": None,
                        "tweet_id": None})
    last = incident.updates[-1].at if incident.updates else incident.opened_at
    return {"id": incident.id, "name": incident.title, "status": incident.status, "impact": incident.impact,
            "created_at": stamp(incident.opened_at), "updated_at": stamp(last),
            "started_at": stamp(incident.started_at), "monitoring_at": stamp(incident.monitoring_at),
            "resolved_at": stamp(incident.resolved_at), "shortlink": f"{base_url}/ui/incidents/{incident.id}",
            "page_id": pid or "", "components": affected, "incident_updates": updates}


# Fields of a Statuspage webhook's incident that outlast has nothing to put in: constant, so a
# receiver written for Statuspage finds every key it reads.
_WEBHOOK_INCIDENT = {"postmortem_ignored": False, "postmortem_body": None, "postmortem_body_last_updated_at": None,
                     "postmortem_published_at": None, "postmortem_notified_subscribers": False,
                     "postmortem_notified_twitter": False, "backfilled": False, "scheduled_for": None,
                     "scheduled_until": None, "scheduled_remind_prior": False, "scheduled_reminded_at": None,
                     "impact_override": None, "scheduled_auto_in_progress": False, "scheduled_auto_completed": False}


def webhook_incident(incident: Incident, pid: str, states: Sequence[tuple[str, str]], base_url: str,
                     told: Mapping[str, str]) -> dict[str, Any]:
    """The ``incident`` of a Statuspage-shaped webhook: :func:`incident_document` with an absolute
    ``shortlink``, the affected components in full, and the newest update's ``affected_components``
    (``old_status`` as this receiver was last told, ``operational`` at first; ``new_status`` now).
    ``states`` is every component's (name, status), in page order."""
    statuses = dict(states)
    document = incident_document(incident, pid, statuses, base_url)
    position = {name: i for i, (name, _) in enumerate(states, start=1)}
    updated = document["updated_at"]
    now = {c["name"]: c["status"] for c in document["components"]}
    document["components"] = [_component(name, now[name], position.get(name, len(position) + 1), pid, updated)
                              for name in incident.components]
    document.update(_WEBHOOK_INCIDENT)
    for update in document["incident_updates"]:
        update.update(wants_twitter_update=False, twitter_updated_at=None)
    if document["incident_updates"]:
        document["incident_updates"][0]["affected_components"] = [
            {"code": short_id("component", name), "name": name, "old_status": told.get(name, "operational"),
             "new_status": now[name]} for name in incident.components]
    return document


def incidents(health: HealthService, *, unresolved: bool = False, limit: int = 50) -> list[dict[str, Any]]:
    pid = page_id(health)
    statuses = dict(component_states(health))
    chosen = [i for i in health.detector.incidents if not (unresolved and i.resolved)]
    chosen.sort(key=lambda i: i.opened_at, reverse=True)
    return [incident_document(i, pid, statuses) for i in chosen[:limit]]


def summary(health: HealthService, base_url: str = "") -> dict[str, Any]:
    status = page_status(health)
    return {"page": page(health, base_url), "status": {k: status[k] for k in ("indicator", "description")},
            "components": components(health), "incidents": incidents(health, unresolved=True),
            "scheduled_maintenances": []}


def document(health: HealthService, name: str, base_url: str = "") -> dict[str, Any] | None:
    """The document at ``/api/v2/{name}``, or None."""
    if name == "summary.json":
        return summary(health, base_url)
    if name == "status.json":
        status = page_status(health)
        return {"page": page(health, base_url), "status": {k: status[k] for k in ("indicator", "description")}}
    if name == "components.json":
        return {"page": page(health, base_url), "components": components(health)}
    if name == "incidents.json":
        return {"page": page(health, base_url), "incidents": incidents(health)}
    if name == "incidents/unresolved.json":
        return {"page": page(health, base_url), "incidents": incidents(health, unresolved=True)}
    if name == "scheduled-maintenances.json":
        return {"page": page(health, base_url), "scheduled_maintenances": []}
    return None


def atom(health: HealthService, base_url: str = "http://outlast.local") -> str:
    """One entry per incident, revised in place; the HTML content holds every update newest first."""
    from datetime import UTC, datetime

    base = base_url.rstrip("/")
    host = base.split("://", 1)[-1]
    chosen = sorted(health.detector.incidents, key=lambda i: i.updates[-1].at if i.updates else i.opened_at,
                    reverse=True)[:50]

    def z(at: float) -> str:
        return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    updated = z(chosen[0].updates[-1].at if chosen and chosen[0].updates else health.clock())
    name = escape(health.config.page_name)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<feed xml:lang="en-US" xmlns="http://www.w3.org/2005/Atom">',
             f"  <id>tag:{host},2005:/history</id>", f'  <link rel="alternate" type="text/html" href="{base}/status"/>',
             f'  <link rel="self" type="application/atom+xml" href="{base}/history.atom"/>',
             f"  <title>{name} Status - Incident History</title>", f"  <updated>{updated}</updated>",
             f"  <author><name>{name}</name></author>"]
    for incident in chosen:
        html = "".join(
            f"<p><small>{datetime.fromtimestamp(u.at, UTC):%b} <var data-var='date'>"
            f"{datetime.fromtimestamp(u.at, UTC).day:2d}</var>, <var data-var='time'>"
            f"{datetime.fromtimestamp(u.at, UTC):%H:%M}</var> UTC</small><br>"
            f"<strong>{u.status.title()}</strong> - {escape(u.body)}</p>" for u in reversed(incident.updates))
        last = incident.updates[-1].at if incident.updates else incident.opened_at
        lines += ["  <entry>", f"    <id>tag:{host},2005:Incident/{escape(incident.id)}</id>",
                  f"    <published>{z(incident.opened_at)}</published>", f"    <updated>{z(last)}</updated>",
                  f'    <link rel="alternate" type="text/html" href="{base}/ui/incidents/{escape(incident.id)}"/>',
                  f"    <title>{escape(incident.title)}</title>", f'    <content type="html">{escape(html)}</content>',
                  "  </entry>"]
    lines.append("</feed>")
    return "\n".join(lines) + "\n"
