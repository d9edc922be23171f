"""Vendor status pages in Atlassian Statuspage v2 form (and incident.io's compatible form for OpenAI).

They are built from the status posts that have happened by the scenario clock, so they lag the real fault
exactly as much as the scenario says the vendor did.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from outlast.sim.catalog import StatusComponent, StatusPageSpec, Vendor
from outlast.sim.scenario import StatusPost

CREATED = "2023-07-11T17:53:10.880Z"
INDICATOR = {"none": "All Systems Operational", "minor": "Minor Service Outage", "major": "Partial System Outage",
             "critical": "Major Service Outage", "maintenance": "Service Under Maintenance"}
SEVERITY = ("none", "minor", "major", "critical")
FROM_COMPONENT = {"operational": "none", "under_maintenance": "none", "degraded_performance": "minor",
                  "partial_outage": "major", "major_outage": "critical"}


def page_spec(vendor: Vendor) -> StatusPageSpec:
    if vendor.status_page is not None:
        return vendor.status_page
    return StatusPageSpec(page_id=_id(vendor.name, "page"), name=vendor.name.title(),
                          url=f"https://status.{vendor.name}.example",
                          components=(StatusComponent(_id(vendor.name, "api"), "API"),))


def _id(*parts: str) -> str:
    digest = hashlib.blake2b(":".join(parts).encode(), digest_size=8).digest()
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    n = int.from_bytes(digest, "big")
    return "".join(alphabet[(n >> (5 * i)) % 36] for i in range(12))


def stamp(moment: datetime, millis: bool = True) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (".000Z" if millis else "Z")


class StatusPage:
    """One vendor's page at one moment: ``posts`` are the posts that have happened, oldest first."""

    def __init__(self, vendor: Vendor, posts: list[StatusPost], wall: Callable[[float], datetime],
                 start: datetime) -> None:
        self.spec = page_spec(vendor)
        self.vendor = vendor.name
        self.posts = [p for p in posts if p.vendor == vendor.name]
        self.wall = wall
        self.start = start
        self.incidentio = self.spec.style == "incidentio"
        self._build()

    def _component(self, name: str) -> StatusComponent | None:
        for component in self.spec.components:
            if name in (component.name, component.id) or component.name.startswith(name + " "):
                return component
        return None

    def _build(self) -> None:
        self.component_status = {c.id: "operational" for c in self.spec.components}
        self.component_updated = {c.id: self.start for c in self.spec.components}
        self.incidents: dict[str, dict[str, Any]] = {}
        for post in self.posts:
            moment = self.wall(post.at)
            incident = self.incidents.get(post.incident)
            if incident is None:
                incident = {"id": _id(self.vendor, post.incident), "name": post.name, "status": post.status,
                            "impact": post.impact or "minor", "created_at": moment, "updated_at": moment,
                            "started_at": moment, "monitoring_at": None, "resolved_at": None, "updates": [],
                            "affected": {}}
                self.incidents[post.incident] = incident
            incident.update(name=post.name, status=post.status, updated_at=moment)
            if post.impact:
                incident["impact"] = post.impact
            if post.status == "monitoring" and incident["monitoring_at"] is None:
                incident["monitoring_at"] = moment
            if post.status in ("resolved", "postmortem") and incident["resolved_at"] is None:
                incident["resolved_at"] = moment
            changes = dict(post.components)
            if post.status == "resolved":
                for cid in incident["affected"]:
                    changes.setdefault(cid, "operational")
            affected = []
            for name, new in changes.items():
                component = self._component(name)
                if component is None:
                    continue
                old = self.component_status[component.id]
                self.component_status[component.id] = new
                self.component_updated[component.id] = moment
                incident["affected"][component.id] = component
                affected.append({"code": component.id, "name": component.name, "old_status": old,
                                 "new_status": new})
            incident["updates"].append({
                "id": _id(self.vendor, post.incident, str(len(incident["updates"]))), "incident_id": incident["id"],
                "status": post.status, "body": post.body or default_body(post.status), "created_at": moment,
                "updated_at": moment, "display_at": moment, "affected_components": affected or None,
                "deliver_notifications": True, "custom_tweet": None, "tweet_id": None})

    # ---------------------------------------------------------------- documents

    def page(self) -> dict[str, Any]:
        updated = max([i["updated_at"] for i in self.incidents.values()], default=self.start)
        page: dict[str, Any] = {"id": self.spec.page_id, "name": self.spec.name, "url": self.spec.url}
        if not self.incidentio:
            page["time_zone"] = "Etc/UTC"
        page["updated_at"] = stamp(updated, millis=not self.incidentio)
        return page

    def status(self) -> dict[str, str]:
        worst = "none"
        for status in self.component_status.values():
            worst = max(worst, FROM_COMPONENT[status], key=SEVERITY.index)
        for incident in self.unresolved():
            worst = max(worst, incident["impact"], key=SEVERITY.index)
        if worst == "none" and "under_maintenance" in self.component_status.values():
            return {"indicator": "maintenance", "description": INDICATOR["maintenance"]}
        return {"indicator": worst, "description": INDICATOR[worst]}

    def components(self) -> list[dict[str, Any]]:
        out = []
        for position, component in enumerate(self.spec.components, start=1):
            status = self.component_status[component.id]
            if self.incidentio:
                out.append({"id": component.id, "name": component.name, "status": status, "position": position})
                continue
            out.append({"id": component.id, "name": component.name, "status": status,
                        "created_at": CREATED, "updated_at": stamp(self.component_updated[component.id]),
                        "position": position, "description": None, "showcase": True, "start_date": "2023-07-11",
                        "group_id": None, "page_id": self.spec.page_id, "group": False,
                        "only_show_if_degraded": False})
        return out

    def _incident(self, incident: dict[str, Any]) -> dict[str, Any]:
        def at(value: datetime | None) -> str | None:
            return None if value is None else stamp(value)

        updates = [{**u, "created_at": stamp(u["created_at"]), "updated_at": stamp(u["updated_at"]),
                    "display_at": stamp(u["display_at"])} for u in reversed(incident["updates"])]
        return {
            "id": incident["id"], "name": incident["name"], "status": incident["status"],
            "impact": incident["impact"], "created_at": at(incident["created_at"]),
            "updated_at": at(incident["updated_at"]), "started_at": at(incident["started_at"]),
            "monitoring_at": at(incident["monitoring_at"]), "resolved_at": at(incident["resolved_at"]),
            "shortlink": f"https://stspg.io/{incident['id'][:8]}", "page_id": self.spec.page_id,
            "components": [{"id": c.id, "name": c.name, "status": self.component_status[c.id]}
                           for c in incident["affected"].values()],
            "incident_updates": updates,
        }

    def unresolved(self) -> list[dict[str, Any]]:
        return [i for i in self.incidents.values() if i["status"] not in ("resolved", "postmortem")]

    def incidents_document(self, unresolved_only: bool = False) -> dict[str, Any]:
        chosen = self.unresolved() if unresolved_only else list(self.incidents.values())
        chosen.sort(key=lambda i: i["created_at"], reverse=True)
        return {"page": self.page(), "incidents": [self._incident(i) for i in chosen[:50]]}

    def summary(self) -> dict[str, Any]:
        if self.incidentio:
            return {"page": self.page(), "status": self.status(), "components": self.components()}
        incidents = sorted(self.unresolved(), key=lambda i: i["created_at"], reverse=True)
        return {"page": self.page(), "status": self.status(), "components": self.components(),
                "incidents": [self._incident(i) for i in incidents], "scheduled_maintenances": []}

    def atom(self) -> str:
        host = self.spec.url.split("://", 1)[-1].rstrip("/")
        base = self.spec.url.rstrip("/")
        incidents = sorted(self.incidents.values(), key=lambda i: i["updated_at"], reverse=True)
        updated = stamp(incidents[0]["updated_at"], millis=False) if incidents else stamp(self.start, millis=False)
        lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<feed xml:lang="en-US" xmlns="http://www.w3.org/2005/Atom">',
                 f"  <id>tag:{host},2005:/history</id>",
                 f'  <link rel="alternate" type="text/html" href="{base}"/>',
                 f'  <link rel="self" type="application/atom+xml" href="{base}/history.atom"/>',
                 f"  <title>{escape(self.spec.name)} Status - Incident History</title>",
                 f"  <updated>{updated}</updated>", f"  <author><name>{escape(self.spec.name)}</name></author>"]
        for incident in incidents:
            html = "".join(
                f"<p><small>{u['created_at'].strftime('%b')} <var data-var='date'>{u['created_at'].day:2d}</var>, "
                f"<var data-var='time'>{u['created_at'].strftime('%H:%M')}</var> UTC</small><br>"
                f"<strong>{u['status'].title()}</strong> - {escape(u['body'])}</p>"
                for u in reversed(incident["updates"]))
            number = int(hashlib.blake2b(incident["id"].encode(), digest_size=3).hexdigest(), 16) + 28_000_000
            lines += ["  <entry>", f"    <id>tag:{host},2005:Incident/{number}</id>",
                      f"    <published>{stamp(incident['created_at'], millis=False)}</published>",
                      f"    <updated>{stamp(incident['updated_at'], millis=False)}</updated>",
                      f'    <link rel="alternate" type="text/html" href="{base}/incidents/{incident["id"]}"/>',
                      f"    <title>{escape(incident['name'])}</title>",
                      f'    <content type="html">{escape(html)}</content>', "  </entry>"]
        lines.append("</feed>")
        return "\n".join(lines) + "\n"


def default_body(status: str) -> str:
    return {"investigating": "We are currently investigating this issue.",
            "identified": "The issue has been identified and a fix is being implemented.",
            "monitoring": "A fix has been implemented and we are monitoring the results.",
            "resolved": "This incident has been resolved.",
            "postmortem": "A postmortem has been published."}.get(status, "")
