"""The inventory: which teams use which providers and models, how much, with which data classes.

Read from the store's exchanges (the recorder fills in team and data class); the same rows back
``outlast report usage``, ``GET /outlast/v1/usage`` and the dashboard's usage page.

    rows = usage(engine, since=time.time() - 7 * 86400)
    teams = by_team(rows)
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from outlast.store.schema import exchanges

DAY = 86400.0


def parse_when(value: str, now: float | None = None) -> float:
    """A point in time as people write it: epoch seconds (``1767225600``), an ISO 8601 date or
    time (``2026-11-01``, ``2026-11-01T08:00:00Z``; UTC unless it says otherwise) or an age
    (``90m``, ``12h``, ``7d``). Raises ``ValueError`` with a message for a person."""
    text = value.strip()
    now = time.time() if now is None else now
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY, "w": 7 * DAY}
    if len(text) > 1 and text[-1] in units:
        try:
            return now - float(text[:-1]) * units[text[-1]]
        except ValueError:
            pass
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a time: use epoch seconds, an ISO 8601 date or time "
                         "(2026-11-01, 2026-11-01T08:00:00Z) or an age (12h, 7d)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def usage(engine: sa.Engine, *, days: float = 30.0, since: float | None = None, until: float | None = None,
          now: float | None = None) -> list[dict[str, Any]]:
    """One row per team, provider, model and data class with requests, tokens and errors, from
    ``since`` (default: ``days`` ago) up to ``until`` (default: now), most requests first."""
    if since is None:
        since = (time.time() if now is None else now) - days * DAY
    e = exchanges.c
    window = e.created >= since
    if until is not None:
        window = sa.and_(window, e.created < until)
    query = (sa.select(e.team, e.served_provider, e.served_model, e.data_class,
                       sa.func.count().label("requests"),
                       sa.func.coalesce(sa.func.sum(e.input_tokens), 0).label("input_tokens"),
                       sa.func.coalesce(sa.func.sum(e.output_tokens), 0).label("output_tokens"),
                       sa.func.sum(sa.case((e.error.is_not(None), 1), else_=0)).label("errors"))
             .where(window)
             .group_by(e.team, e.served_provider, e.served_model, e.data_class)
             .order_by(sa.desc("requests"), e.team, e.served_provider, e.served_model))
    with engine.connect() as conn:
        return [{"team": r.team or "(master key)", "provider": r.served_provider or "(none)",
                 "model": r.served_model or "(none)", "data_class": r.data_class or "(unclassified)",
                 "requests": int(r.requests), "input_tokens": int(r.input_tokens),
                 "output_tokens": int(r.output_tokens), "errors": int(r.errors or 0)} for r in conn.execute(query)]


def by_team(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per team: totals, the providers and models it used (``provider/model`` -> requests) and its
    requests by data class; most requests first."""
    teams: dict[str, dict[str, Any]] = {}
    for row in rows:
        team = teams.setdefault(row["team"], {"team": row["team"], "requests": 0, "input_tokens": 0,
                                              "output_tokens": 0, "errors": 0, "models": {}, "data_classes": {}})
        for name in ("requests", "input_tokens", "output_tokens", "errors"):
            team[name] += row[name]
        target = f"{row['provider']}/{row['model']}"
        team["models"][target] = team["models"].get(target, 0) + row["requests"]
        team["data_classes"][row["data_class"]] = team["data_classes"].get(row["data_class"], 0) + row["requests"]
    return sorted(teams.values(), key=lambda t: (-t["requests"], t["team"]))


def report(engine: sa.Engine, *, since: float, until: float | None = None) -> dict[str, Any]:
    """The inventory as ``GET /outlast/v1/usage`` answers it."""
    rows = usage(engine, since=since, until=until)
    return {"since": since, "until": until, "teams": by_team(rows), "usage": rows}
