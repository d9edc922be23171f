"""Incidents, uptime and reports in the store (SQLite or PostgreSQL), on SQLAlchemy Core.

The tables are created by the store's Alembic chain (``0003_health``); they are described here,
beside the only code that queries them. Writes are rare (an incident update, a minute of uptime)
and happen off the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import orjson
import sqlalchemy as sa

from outlast.health.incidents import Incident, Update
from outlast.health.reports import Report
from outlast.health.uptime import day_of

metadata = sa.MetaData()

incidents = sa.Table(
    "health_incidents", metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("provider", sa.String(128), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("cause", sa.String(32), nullable=False),
    sa.Column("impact", sa.String(16), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("resolved_at", sa.Float),
    sa.Column("data", sa.Text, nullable=False),
)
updates = sa.Table(
    "health_incident_updates", metadata,
    sa.Column("incident_id", sa.String(80), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)
uptime = sa.Table(
    "health_uptime", metadata,
    sa.Column("component", sa.String(400), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("degraded_minutes", sa.Float, nullable=False),
    sa.Column("partial_minutes", sa.Float, nullable=False),
    sa.Column("major_minutes", sa.Float, nullable=False),
)
reports = sa.Table(
    "health_reports", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("component", sa.String(400), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("reporter", sa.String(200)),
)


@dataclass(frozen=True, slots=True)
class HealthPruned:
    uptime_days: int = 0  # (component, day) rows
    incidents: int = 0
    reports: int = 0


class HealthStore:
    """``HealthStore(engine)``: the engine of a migrated :class:`~outlast.store.sql.SqlStore`."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def save_incident(self, incident: Incident) -> None:
        data = incident.to_dict()
        data.pop("updates", None)
        row = {"id": incident.id, "provider": incident.provider, "title": incident.title,
               "status": incident.status, "cause": incident.cause, "impact": incident.impact,
               "started_at": incident.started_at, "opened_at": incident.opened_at,
               "resolved_at": incident.resolved_at, "data": orjson.dumps(data).decode()}
        with self.engine.begin() as conn:
            conn.execute(updates.delete().where(updates.c.incident_id == incident.id))
            conn.execute(incidents.delete().where(incidents.c.id == incident.id))
            conn.execute(incidents.insert(), [row])
            if incident.updates:
                conn.execute(updates.insert(), [
                    {"incident_id": incident.id, "seq": i, "at": u.at, "status": u.status, "body": u.body}
                    for i, u in enumerate(incident.updates)])

    def load_incidents(self, *, since: float | None = None, limit: int = 500) -> list[Incident]:
        """Oldest first: every unresolved one, and those opened since ``since``."""
        query = sa.select(incidents.c.id, incidents.c.data).order_by(incidents.c.opened_at.desc()).limit(limit)
        if since is not None:
            query = query.where(sa.or_(incidents.c.opened_at >= since, incidents.c.resolved_at.is_(None)))
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
            found: dict[str, list[Update]] = {row.id: [] for row in rows}
            if found:
                for u in conn.execute(sa.select(updates).where(updates.c.incident_id.in_(list(found)))
                                      .order_by(updates.c.incident_id, updates.c.seq)):
                    found[u.incident_id].append(Update(u.at, u.status, u.body))
        out = []
        for row in reversed(rows):
            data = orjson.loads(row.data)
            data["updates"] = found[row.id]
            out.append(Incident.from_dict(data))
        return out

    def get_incident(self, incident_id: str) -> Incident | None:
        with self.engine.connect() as conn:
            ids = [r.id for r in conn.execute(sa.select(incidents.c.id).where(
                incidents.c.id.like(incident_id.replace("%", "") + "%")).limit(2))]
        if len(ids) != 1:
            return None
        for incident in self.load_incidents(since=None, limit=100_000):
            if incident.id == ids[0]:
                return incident
        return None

    def save_uptime(self, rows: Iterable[tuple[str, date, dict[str, float]]]) -> None:
        values = [{"component": c, "day": d.isoformat(), "degraded_minutes": m.get("degraded_performance", 0.0),
                   "partial_minutes": m.get("partial_outage", 0.0), "major_minutes": m.get("major_outage", 0.0)}
                  for c, d, m in rows]
        if not values:
            return
        with self.engine.begin() as conn:
            for v in values:
                conn.execute(uptime.delete().where(sa.and_(uptime.c.component == v["component"],
                                                           uptime.c.day == v["day"])))
            conn.execute(uptime.insert(), values)

    def load_uptime(self, since: date) -> list[tuple[str, date, dict[str, float]]]:
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(uptime).where(uptime.c.day >= since.isoformat())))
        return [(r.component, date.fromisoformat(r.day),
                 {"degraded_performance": r.degraded_minutes, "partial_outage": r.partial_minutes,
                  "major_outage": r.major_minutes}) for r in rows]

    def add_report(self, report: Report) -> None:
        with self.engine.begin() as conn:
            conn.execute(reports.insert(), [{"at": report.at, "component": report.component, "note": report.note,
                                             "reporter": report.reporter}])

    def load_reports(self, since: float) -> list[Report]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(reports).where(reports.c.at >= since).order_by(reports.c.at))
            return [Report(r.at, r.component, r.note, r.reporter) for r in rows]

    def prune(self, now: float, days: int) -> HealthPruned:
        """Forget what the status page no longer shows: uptime of days before the last ``days``
        (as :meth:`Uptime.prune <outlast.health.uptime.Uptime.prune>` does in memory), incidents
        resolved and reports made more than ``days`` ago. An unresolved incident is kept, however old."""
        cutoff = now - days * 86400.0
        oldest = (day_of(now) - timedelta(days=days)).isoformat()
        with self.engine.begin() as conn:
            removed_uptime = conn.execute(uptime.delete().where(uptime.c.day < oldest)).rowcount
            old = sa.select(incidents.c.id).where(incidents.c.resolved_at.is_not(None),
                                                  incidents.c.resolved_at < cutoff)
            conn.execute(updates.delete().where(updates.c.incident_id.in_(old)))
            removed_incidents = conn.execute(incidents.delete().where(
                incidents.c.resolved_at.is_not(None), incidents.c.resolved_at < cutoff)).rowcount
            removed_reports = conn.execute(reports.delete().where(reports.c.at < cutoff)).rowcount
        return HealthPruned(removed_uptime, removed_incidents, removed_reports)
