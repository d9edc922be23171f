"""The vendor scorecard and the post-incident report, from what the store kept: incidents and
uptime (health tables) and exchanges with their attempts (the recorder's tables).

``scorecard(engine, since)`` is one row per provider; ``render_*`` turn rows into the terminal,
Markdown or HTML. ``incident_report(incident)`` is the post-incident report as Markdown.

Latency is each answer's own time to first token: the attempt that served it, from the moment it was
sent (``attempts.first_event_ms - started_ms``), per provider and per provider/model. The exchange's
``first_token_ms`` counts from the start of the whole exchange, so it would charge a fallback with the
time the first choice spent failing, and make it look worst exactly during someone else's outage.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

import sqlalchemy as sa

from outlast.health.incidents import CAUSES, Incident, clock_text, duration_text, relative_text
from outlast.health.persist import HealthStore
from outlast.health.uptime import PARTIAL_WEIGHT, day_of

COLUMNS = ("provider", "uptime", "incidents", "mttr", "ack_lag", "p50", "p95", "requests", "error_mix", "saved")
HEADINGS = ("Provider", "Uptime", "Incidents", "Mean time to recover", "Vendor ack lag", "p50 first token",
            "p95 first token", "Requests", "Error mix", "Saved by failover")
MODEL_HEADINGS = ("Model", "Answers", "p50 first token", "p95 first token")


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    index = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[index]


def scorecard(engine: sa.Engine, *, days: float = 30.0, now: float | None = None) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    since = now - days * 86400
    store = HealthStore(engine)
    incidents = [i for i in store.load_incidents(since=since, limit=100_000) if i.opened_at >= since]
    first_day = day_of(since)
    uptime_rows = store.load_uptime(first_day)
    meta = sa.MetaData()
    exchanges = sa.Table("exchanges", meta, autoload_with=engine)
    attempts = sa.Table("attempts", meta, autoload_with=engine)
    latencies: dict[str, list[float]] = {}
    model_latencies: dict[str, dict[str, list[float]]] = {}
    served: dict[str, int] = {}
    mix: dict[str, dict[str, int]] = {}
    saved: dict[str, int] = {}
    with engine.connect() as conn:
        for row in conn.execute(sa.select(exchanges.c.served_provider, sa.func.count())
                                .where(exchanges.c.created >= since, exchanges.c.served_provider.is_not(None))
                                .group_by(exchanges.c.served_provider)):
            served[row[0]] = int(row[1])
        joined = attempts.join(exchanges, attempts.c.exchange_id == exchanges.c.id)
        # The served attempt's own time to first token (see the module's docstring).
        for answer in conn.execute(sa.select(attempts.c.provider, attempts.c.model, attempts.c.started_ms,
                                             attempts.c.first_event_ms).select_from(joined)
                                   .where(exchanges.c.created >= since, attempts.c.outcome == "ok",
                                          attempts.c.started_ms.is_not(None), attempts.c.first_event_ms.is_not(None))):
            own = answer.first_event_ms - answer.started_ms
            latencies.setdefault(answer.provider, []).append(own)
            model_latencies.setdefault(answer.provider, {}).setdefault(answer.model, []).append(own)
        for failed in conn.execute(sa.select(attempts.c.provider, attempts.c.outcome, sa.func.count())
                                .select_from(joined).where(exchanges.c.created >= since)
                                .where(attempts.c.outcome != "ok")
                                .group_by(attempts.c.provider, attempts.c.outcome)):
            mix.setdefault(failed[0], {})[failed[1]] = int(failed[2])
        for first in conn.execute(sa.select(attempts.c.provider, sa.func.count()).select_from(joined)
                                  .where(exchanges.c.created >= since, exchanges.c.fallback.is_(True),
                                         attempts.c.seq == 0).group_by(attempts.c.provider)):
            saved[first[0]] = int(first[1])
    providers = sorted(set(served) | set(mix) | set(latencies) | {i.provider for i in incidents}
                       | {c for c, _, _ in uptime_rows if "/" not in c})
    today = day_of(now)
    out = []
    for provider in providers:
        mine_days = [(d, m) for c, d, m in uptime_rows if c == provider]
        down = sum(m.get("major_outage", 0.0) + PARTIAL_WEIGHT * m.get("partial_outage", 0.0) for _, m in mine_days)
        # Counted from the first day the provider was watched in the window (a row each such day):
        # the days before are no data, not 100 %.
        watched = (today - min(d for d, _ in mine_days)).days + 1 if mine_days else 0
        mine = [i for i in incidents if i.provider == provider]
        durations = [i.duration for i in mine if i.duration is not None]
        lags = [i.ack_lag for i in mine if i.ack_lag is not None]
        values = latencies.get(provider, [])
        out.append({
            "provider": provider, "uptime": 100.0 * (1 - down / (1440.0 * watched)) if watched else None,
            "watched_days": watched, "window_days": (today - first_day).days + 1, "incidents": len(mine),
            "mttr": sum(durations) / len(durations) if durations else None,
            "ack_lag": sum(lags) / len(lags) if lags else None,
            "p50": _percentile(values, 0.5), "p95": _percentile(values, 0.95), "requests": served.get(provider, 0),
            "error_mix": dict(sorted(mix.get(provider, {}).items(), key=lambda kv: -kv[1])),
            "saved": saved.get(provider, 0),
            "models": [{"model": f"{provider}/{model}", "answers": len(own), "p50": _percentile(own, 0.5),
                        "p95": _percentile(own, 0.95)}
                       for model, own in sorted(model_latencies.get(provider, {}).items())]})
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def model_cells(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The per-model latency table: one line per provider/model that answered."""
    return [[m["model"], str(m["answers"]), _ms(m["p50"]), _ms(m["p95"])] for r in rows for m in r["models"]]


def cells(row: dict[str, Any]) -> list[str]:
    uptime = "no data" if row["uptime"] is None else f"{row['uptime']:.3f}%"
    if row["uptime"] is not None and row["watched_days"] < row["window_days"]:
        days = row["watched_days"]  # watched for part of the window only: over how long
        uptime += f" ({days} day{'' if days == 1 else 's'})"
    return [row["provider"], uptime, str(row["incidents"]), duration_text(row["mttr"]),
            duration_text(row["ack_lag"]), _ms(row["p50"]), _ms(row["p95"]), str(row["requests"]),
            ", ".join(f"{k} {v}" for k, v in row["error_mix"].items()) or "-", str(row["saved"])]


def render_markdown(rows: list[dict[str, Any]], days: float) -> str:
    lines = [f"# Vendor scorecard: the last {days:g} days", "", "| " + " | ".join(HEADINGS) + " |",
             "|" + "---|" * len(HEADINGS)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    models = model_cells(rows)
    if models:
        lines += ["", "## Time to first token by model", "", "| " + " | ".join(MODEL_HEADINGS) + " |",
                  "|" + "---|" * len(MODEL_HEADINGS)]
        lines += ["| " + " | ".join(c) + " |" for c in models]
    return "\n".join(lines) + "\n"


def render_html(rows: list[dict[str, Any]], days: float) -> str:
    def table(headings: tuple[str, ...], lines: list[list[str]]) -> str:
        head = "".join(f"<th scope=col>{escape(h)}</th>" for h in headings)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in line) + "</tr>" for line in lines)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    models = model_cells(rows)
    by_model = f"<h2>Time to first token by model</h2>{table(MODEL_HEADINGS, models)}" if models else ""
    return (f'<!doctype html><html lang="en"><meta charset="utf-8"><title>Vendor scorecard</title>'
            f"<style>body{{font-family:system-ui,sans-serif}}td,th{{padding:.3rem .6rem;border-bottom:1px solid #ccc;"
            f"text-align:left}}</style><h1>Vendor scorecard: the last {days:g} days</h1>"
            f"{table(HEADINGS, [cells(r) for r in rows])}{by_model}</html>\n")


def incident_report(incident: Incident) -> str:
    """The post-incident report as Markdown: timeline, cause class, components, impact, evidence."""
    vendor = incident.vendor_incident or {}
    others = [p for p in (incident.evidence.get("vendor_posts") or {}).values() if not p.get("acknowledgement")]
    lines = [f"# {incident.title}", "",
             f"- **Incident**: {incident.id} ({incident.status})",
             f"- **Cause class**: {CAUSES.get(incident.cause, incident.cause)}",
             f"- **Components affected**: {', '.join(incident.components)}",
             f"- **Began**: {clock_text(incident.started_at)}",
             f"- **Detected by outlast**: {clock_text(incident.opened_at)} "
             f"({duration_text(incident.detection_lag)} after onset)",
             "- **Vendor acknowledged**: "
             + (f"{clock_text(incident.vendor_ack_at)} ({relative_text(incident.ack_lag, 'onset')}): "
                f"{vendor.get('name', '')}" if incident.vendor_ack_at is not None and incident.ack_lag is not None
                else "not seen in its feed"),
             *(["- **Other vendor posts**: " + "; ".join(
                 f"{p.get('name', '')} ({p.get('status', '')}, posted {clock_text(p.get('acknowledged_at'))})"
                 for p in others)] if others else []),
             f"- **Resolved**: {clock_text(incident.resolved_at)} (lasted {duration_text(incident.duration)})",
             f"- **Impact**: {incident.requests_affected} failed attempts; {incident.failed_over} requests served by "
             f"failover; {incident.failed} requests failed",
             f"- **Peak error rate**: {incident.evidence.get('peak_error_rate', 0):.0%}",
             "- **Failures by cause**: " + (", ".join(f"{CAUSES.get(k, k)}: {v}" for k, v in
                                                      sorted(incident.evidence.get("causes", {}).items(),
                                                             key=lambda kv: -kv[1])) or "-"),
             "", "## Timeline", ""]
    lines += [f"- {clock_text(u.at)} — **{u.status}** — {u.body}" for u in incident.updates]
    return "\n".join(lines) + "\n"

