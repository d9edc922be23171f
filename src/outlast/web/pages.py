"""Server-rendered HTML: the public status page and the dashboard's pages. Plain strings with
every value escaped; the only script and style are outlast's own files under ``/ui/static/``.

Every dashboard page is given the visitor's session (``session=``): its CSRF token goes in a hidden
field of every form that posts (outlast.web.session), and a signed-in visitor gets a sign-out button.
Every form works without the script."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from outlast.health.incidents import CAUSES, Incident, clock_text, duration_text, relative_text
from outlast.health.uptime import day_of
from outlast.web.statuspage import component_states, page_status

if TYPE_CHECKING:
    from outlast.health.service import HealthService
    from outlast.web.session import Session

NAV = (("/ui/", "Overview"), ("/ui/incidents", "Incidents"), ("/ui/providers", "Providers"),
       ("/ui/conversations", "Conversations"), ("/ui/usage", "Usage"), ("/status", "Status page"))


def csrf_field(session: Session | None) -> str:
    """The hidden field every posting form carries (outlast.web.session)."""
    return f'<input type="hidden" name="csrf" value="{escape(session.csrf)}">' if session is not None else ""


def sign_out_form(session: Session) -> str:
    return (f'<form method="post" action="/ui/logout" class="sign-out">{csrf_field(session)}'
            f'<button type="submit">Sign out</button></form>')


def layout(title: str, body: str, *, current: str = "", refresh: int | None = None, nav: bool = True,
           session: Session | None = None) -> str:
    links = "".join(f'<a href="{href}"{" aria-current=page" if href == current else ""}>{label}</a>'
                    for href, label in NAV) if nav else ""
    if nav and session is not None and session.signed_in:
        links += sign_out_form(session)
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">{meta}'
            f"<title>{escape(title)}</title>"
            f'<link rel="stylesheet" href="/ui/static/outlast.css"><link rel="icon" href="data:,">'
            f'</head><body>{"<nav aria-label=Main>" + links + "</nav>" if nav else ""}<main>{body}</main>'
            f'<script src="/ui/static/outlast.js" defer></script></body></html>')


def label(status: str) -> str:
    return status.replace("_", " ")


def bars(health: HealthService, component: str) -> str:
    today = day_of(health.clock())
    days = health.uptime.history(component, today, health.config.uptime_days)
    spans = "".join(f'<span class="{d["worst"]}" title="{d["date"]}: '
                    f'{"no data" if d["uptime"] is None else str(d["uptime"]) + "% uptime"}"></span>' for d in days)
    percent = health.uptime.percent_over(component, today)
    first = health.uptime.first_day(component)
    if percent is None or first is None:
        summary = "no data yet"
    elif (today - first).days + 1 < health.config.uptime_days:
        summary = f"{percent:.2f}% uptime since {first.isoformat()}"  # watched for less than the window
    else:
        summary = f"{percent:.2f}% uptime"
    return (f'<div class="bars" role="img" aria-label="{health.config.uptime_days}-day uptime of '
            f'{escape(component)}: {summary}">{spans}</div>'
            f'<div class="muted">{health.config.uptime_days} days ago · {summary} · today</div>')


def incident_block(incident: Incident, *, link: bool = True) -> str:
    title = escape(incident.title)
    if link:
        title = f'<a href="/ui/incidents/{quote(incident.id)}">{title}</a>'
    updates = "".join(f'<div class="update"><strong>{escape(u.status)}</strong> — {escape(u.body)}'
                      f'<div class="muted">{clock_text(u.at)}</div></div>' for u in reversed(incident.updates))
    css = "incident resolved" if incident.resolved else "incident"
    return (f'<article class="{css}" data-incident="{escape(incident.id)}"><h3>{title}</h3>'
            f'<div class="muted">{escape(incident.status)} · {escape(CAUSES.get(incident.cause, incident.cause))} · '
            f'{escape(", ".join(incident.components))}</div>{updates}</article>')


def status_page(health: HealthService) -> str:
    status = page_status(health)
    parts = [f'<h1>{escape(health.config.page_name)} status</h1>',
             f'<div class="banner {status["indicator"]}" role="status">{escape(status["description"])}</div>']
    current = [i for i in health.detector.incidents if not i.resolved]
    if current:
        parts.append("<h2>Current incidents</h2>" + "".join(incident_block(i, link=False) for i in reversed(current)))
    parts.append("<h2>Components</h2>")
    for name, state in component_states(health):
        parts.append(f'<section class="component"><header><strong>{escape(name)}</strong>'
                     f'<span class="status-{state}">{label(state)}</span></header>{bars(health, name)}</section>')
    since = health.clock() - 14 * 86400
    past = [i for i in health.detector.incidents if i.resolved and i.opened_at >= since]
    parts.append("<h2>Past incidents</h2>")
    parts.append("".join(incident_block(i, link=False) for i in reversed(past)) or
                 '<p class="muted">No incidents in the last 14 days.</p>')
    parts.append('<p class="muted">Also as <a href="/api/v2/summary.json">Statuspage JSON</a> and an '
                 '<a href="/history.atom">Atom feed</a>. This page refreshes itself every 30 seconds.</p>')
    return layout(f"{health.config.page_name} status", "".join(parts), refresh=30, nav=False)


def overview(health: HealthService, live: dict[str, Any], *, session: Session | None = None,
             result: str = "") -> str:
    """``result``: what became of a report the form just filed (shown where the script shows it)."""
    rows = "".join(
        f'<tr><td>{escape(c["component"])}</td><td data-component-status="{escape(c["component"])}" '
        f'class="status-{c["status"]}">{label(c["status"])}</td><td>{c["error_rate"]:.1%}</td>'
        f'<td>{c["samples"]}</td><td>{escape(", ".join(f"{k} {v}" for k, v in c["mix"].items()))}</td></tr>'
        for c in live["components"])
    feeds = "".join(f'<li>{escape(f["provider"])}: feed {escape(f["state"])}'
                    f'{" — " + escape(f["error"]) if f["error"] else ""}'
                    f'{" — vendor says: " + escape(f["description"]) if f["description"] else ""}</li>'
                    for f in live["feeds"]) or "<li>No vendor status feeds configured.</li>"
    options = "".join(f'<option value="{escape(c)}">{escape(c)}</option>' for c in health.components())
    numbers = (('req-rate', "Requests (last minute)", f'{live["live"]["requests_per_minute"]:.0f}/min'),
               ('err-rate', "Error rate", f'{live["live"]["error_rate"]:.1%}'),
               ('failovers', "Served by failover", str(live["live"]["failovers"])),
               ('requests-total', "Requests since start", str(live["live"]["requests_total"])),
               ('open-incidents', "Open incidents", str(sum(1 for i in live["incidents"]
                                                            if i["status"] != "resolved"))))
    tiles = "".join(f'<div class="number"><span>{text}</span><output id="{ident}" aria-live="polite">{value}'
                    f"</output></div>" for ident, text, value in numbers)
    body = (f'<h1>Overview</h1><div class="numbers">{tiles}</div>'
            f'<h2>Open incidents</h2><ul id="live-incidents"><li>…</li></ul>'
            f'<h2>Providers and models</h2><table><thead><tr><th scope="col">Component</th><th scope="col">State</th>'
            f'<th scope="col">Errors (30 s)</th><th scope="col">Samples</th><th scope="col">Failure mix</th></tr>'
            f'</thead><tbody>{rows}</tbody></table><h2>Vendor status pages</h2><ul>{feeds}</ul>'
            f'<h2>Something wrong?</h2><form id="report-form" class="report" action="/outlast/v1/reports" '
            f'method="post">{csrf_field(session)}<label>Something\'s wrong with <select name="component" required>'
            f'{options}</select></label><label>Note (optional) <input name="note" maxlength="500" size="50"></label>'
            f'<button type="submit" id="report-button">Report a problem</button> '
            f'<span id="report-result" role="status">{escape(result)}</span></form>')
    return layout("outlast — overview", body, current="/ui/", session=session)


def _ack(incident: Incident) -> str:
    """When the vendor said so, against the onset outlast saw: "35m 00s after onset", "2m 00s before onset"."""
    lag = incident.ack_lag
    return "-" if lag is None else relative_text(lag, "onset")


def incidents_page(health: HealthService, *, session: Session | None = None) -> str:
    items = list(reversed(health.detector.incidents))
    rows = "".join(
        f'<tr><td><a href="/ui/incidents/{quote(i.id)}">{escape(i.title)}</a></td><td>{escape(i.status)}</td>'
        f"<td>{escape(CAUSES.get(i.cause, i.cause))}</td><td>{clock_text(i.started_at)}</td>"
        f"<td>{duration_text(i.detection_lag)}</td><td>{_ack(i)}</td>"
        f"<td>{duration_text(i.duration)}</td></tr>" for i in items)
    heads = "".join(f'<th scope="col">{h}</th>' for h in ("Incident", "Status", "Cause", "Began", "Detected after",
                                                           "Vendor acknowledged", "Lasted"))
    body = (f"<h1>Incidents</h1><table><thead><tr>{heads}</tr></thead>"
            f"<tbody>{rows or '<tr><td colspan=7>No incidents.</td></tr>'}</tbody></table>")
    return layout("outlast — incidents", body, current="/ui/incidents", session=session)


def incident_page(incident: Incident, *, session: Session | None = None) -> str:
    vendor = incident.vendor_incident or {}
    facts = [("Status", incident.status), ("Cause", CAUSES.get(incident.cause, incident.cause)),
             ("Components", ", ".join(incident.components)), ("Began", clock_text(incident.started_at)),
             ("Opened by outlast", f"{clock_text(incident.opened_at)} "
                                   f"({relative_text(incident.detection_lag, 'onset')})"),
             ("Vendor acknowledged", f"{clock_text(incident.vendor_ack_at)} ({_ack(incident)}) "
                                     f"{vendor.get('name', '')}" if incident.vendor_ack_at else "not yet"),
             ("Resolved", clock_text(incident.resolved_at)),
             ("Impact", f"{incident.requests_affected} failed attempts, {incident.failed_over} requests served by "
                        f"failover, {incident.failed} failed"),
             ("Peak error rate", f"{incident.evidence.get('peak_error_rate', 0):.0%}")]
    table = "".join(f"<tr><th scope=row>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in facts)
    body = (f"<h1>{escape(incident.title)}</h1><table>{table}</table><h2>Timeline</h2>"
            + "".join(f'<div class="update"><strong>{escape(u.status)}</strong> <span class="muted">'
                      f"{clock_text(u.at)}</span><br>{escape(u.body)}</div>" for u in incident.updates))
    return layout(incident.title, body, current="/ui/incidents", session=session)


def providers_page(health: HealthService, *, session: Session | None = None) -> str:
    today = day_of(health.clock())
    parts = ["<h1>Providers</h1>"]
    for name, state in component_states(health):
        s = health.detector.components.get(name)
        latency = "-" if s is None or s.baseline_latency is None else f"{s.baseline_latency * 1000:.0f} ms"
        recent = "-" if s is None or s.reading.latency is None else f"{s.reading.latency * 1000:.0f} ms"
        parts.append(f'<section class="component"><header><strong>{escape(name)}</strong>'
                     f'<span class="status-{state}">{label(state)}</span></header>'
                     f'<div class="muted">uptime today {health.uptime.percent(name, today):.2f}% · first token usually '
                     f"{latency}, lately {recent}</div>{bars(health, name)}</section>")
    return layout("outlast — providers", "".join(parts), current="/ui/providers", session=session)


def conversations_page(items: list[Any], query: str, hits: list[Any] | None, error: str | None, *,
                       session: Session | None = None, notice: str = "") -> str:
    form = (f'<form method="get" action="/ui/conversations" role="search"><label>Search '
            f'<input type="search" name="q" value="{escape(query)}"></label> <button>Search</button></form>')
    if error:
        return layout("outlast — conversations", f"<h1>Conversations</h1>{form}<p>{escape(error)}</p>",
                      current="/ui/conversations", session=session)
    heads: tuple[str, ...]
    if hits is not None:
        heads = ("Conversation", "Who", "Where it matched")
        rows = "".join(f'<tr><td><a href="/ui/conversations/{quote(h.conversation_id)}">{escape(h.title)}</a></td>'
                       f"<td>{escape(h.role)}</td><td>{escape(h.snippet)}</td></tr>" for h in hits)
    else:
        heads = ("Conversation", "Source", "Messages", "Updated")
        rows = "".join(f'<tr><td><a href="/ui/conversations/{quote(c.id)}">{escape(c.title or c.id)}</a></td>'
                       f"<td>{escape(c.source)}</td><td>{c.message_count}</td><td>{clock_text(c.updated)}</td></tr>"
                       for c in items)
    head = "".join(f'<th scope="col">{h}</th>' for h in heads)
    empty = f'<tr><td colspan="{len(heads)}">Nothing found.</td></tr>'
    said = f'<p role="status">{escape(notice)}</p>' if notice else ""
    body = (f"<h1>Conversations</h1>{said}{form}<table><thead><tr>{head}</tr></thead><tbody>{rows or empty}"
            "</tbody></table>")
    return layout("outlast — conversations", body, current="/ui/conversations", session=session)


def conversation_page(conversation: Any, *, session: Session | None = None) -> str:
    cid = quote(conversation.id)
    messages = "".join(f'<div class="message"><strong>{escape(m.role)}</strong><pre>{escape(m.text)}</pre></div>'
                       for m in conversation.messages)
    # Deleting takes two steps without the script: open the disclosure, then press the button.
    delete = (f'<details class="delete"><summary>Delete…</summary><form method="post" '
              f'action="/ui/conversations/{cid}/delete">{csrf_field(session)}<p>This deletes the conversation, its '
              f"{len(conversation.messages)} messages and the exchanges recorded in it from the store; the audit "
              f"log keeps its records (who, when, which model; no content).</p>"
              f"<button>Delete this conversation</button></form></details>")
    body = (f"<h1>{escape(conversation.summary.title or conversation.id)}</h1>"
            f'<p>Export: <a href="/ui/conversations/{cid}/export.md">Markdown</a> · '
            f'<a href="/ui/conversations/{cid}/export.json">JSON</a></p>{messages}{delete}')
    return layout(conversation.summary.title or "conversation", body, current="/ui/conversations", session=session)


def login_page(error: str = "") -> str:
    # No session and so no token yet: the sign-in is checked by its origin (outlast.web.session).
    note = f'<p role="alert">{escape(error)}</p>' if error else ""
    body = (f"<h1>Sign in</h1>{note}<form method=post action=/ui/login><label>Master key "
            f'<input type="password" name="key" autocomplete="current-password" required></label>'
            f"<button>Sign in</button></form>")
    return layout("outlast — sign in", body, nav=False)


def logout_page(session: Session) -> str:
    body = f"<h1>Sign out</h1><p>Sign out of the outlast dashboard in this browser?</p>{sign_out_form(session)}"
    return layout("outlast — sign out", body, nav=False)


def refused_page(message: str) -> str:
    body = (f'<h1>Not done</h1><p role="alert">{escape(message)}</p>'
            '<p><a href="/ui/">Back to the dashboard</a> (reload it, then try again).</p>')
    return layout("outlast — not done", body, nav=False)


def now_text() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S UTC")
