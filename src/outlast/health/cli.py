"""``outlast report`` (vendor scorecard, post-incident report) and ``outlast status`` (the running
gateway's state, through its API). Thin shells over :mod:`outlast.health.scorecard` and
``GET /outlast/v1/health``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from outlast.health.scorecard import (
    HEADINGS,
    MODEL_HEADINGS,
    cells,
    incident_report,
    model_cells,
    render_html,
    render_markdown,
    scorecard,
)
from outlast.store.sql import SqlStore

err = Console(stderr=True)


def _engine(config_path: str | None) -> SqlStore:
    from outlast.cli import _load
    from outlast.store import store_url

    config = _load(config_path)
    store = SqlStore(store_url(config.store))
    store.migrate()
    return store


@click.group("report", invoke_without_command=True)
@click.option("--config", "config_path", envvar="OUTLAST_CONFIG", type=click.Path(dir_okay=False))
@click.option("--days", default=30.0, show_default=True, type=float, help="The window: this many days back.")
@click.option("--format", "fmt", type=click.Choice(["terminal", "markdown", "html"]), default="terminal",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
@click.pass_context
def report(ctx: click.Context, config_path: str | None, days: float, fmt: str, output: Path | None) -> None:
    """Vendor scorecard: uptime, incidents, time to recover, acknowledgement lag, latency, error mix,
    requests saved by failover. `outlast report incident ID` for one incident."""
    ctx.ensure_object(dict)["config_path"] = config_path
    if ctx.invoked_subcommand is not None:
        return
    store = _engine(config_path)
    try:
        rows = scorecard(store.engine, days=days)
    finally:
        store.close()
    if fmt == "terminal" and output is None:
        table = Table(title=f"Vendor scorecard: the last {days:g} days")
        for heading in HEADINGS:
            table.add_column(heading)
        for row in rows:
            table.add_row(*cells(row))
        Console().print(table)
        models = model_cells(rows)
        if models:
            by_model = Table(title="Time to first token by model")
            for heading in MODEL_HEADINGS:
                by_model.add_column(heading)
            for line in models:
                by_model.add_row(*line)
            Console().print(by_model)
        if not rows:
            click.echo("nothing recorded in this window yet")
        return
    text = render_html(rows, days) if fmt == "html" else render_markdown(rows, days)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


@report.command("incident")
@click.argument("incident_id")
@click.pass_context
def report_incident(ctx: click.Context, incident_id: str) -> None:
    """Post-incident report: timeline, cause class, components, impact, evidence (Markdown)."""
    from outlast.health.persist import HealthStore

    store = _engine(ctx.obj.get("config_path"))
    try:
        incident = HealthStore(store.engine).get_incident(incident_id)
    finally:
        store.close()
    if incident is None:
        err.print(f"no incident {incident_id!r} (or the prefix is not unique)")
        sys.exit(1)
    click.echo(incident_report(incident), nl=False)


@click.command("status")
@click.option("--url", default=lambda: os.environ.get("OUTLAST_URL", "http://127.0.0.1:8484"),
              show_default="$OUTLAST_URL or http://127.0.0.1:8484", help="The running gateway.")
@click.option("--key", envvar="OUTLAST_MASTER_KEY", help="The master key (default: $OUTLAST_MASTER_KEY).")
def status(url: str, key: str | None) -> None:
    """A terminal summary of the running gateway: live numbers, components, incidents."""
    import httpx

    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(url.rstrip("/") + "/outlast/v1/health", headers=headers, timeout=5)
    except httpx.HTTPError as error:
        err.print(f"cannot reach the gateway at {url}: {error}")
        sys.exit(1)
    if response.status_code != 200:
        err.print(f"{url} answered {response.status_code}: {response.text[:200]}")
        sys.exit(1)
    data = response.json()
    console = Console()
    live = data["live"]
    console.print(f"[bold]{data['status']['description']}[/]  {live['requests_per_minute']:.0f} requests/min, "
                  f"{live['error_rate']:.1%} errors, {live['failovers']} served by failover "
                  f"({live['requests_total']} requests since start)", highlight=False)
    table = Table()
    for heading in ("Component", "State", "Errors", "Samples", "Failure mix"):
        table.add_column(heading)
    for c in data["components"]:
        samples = str(c["samples"]) + (f" ({c['probes']} probes)" if c.get("probes") else "")
        table.add_row(c["component"], c["status"].replace("_", " "), f"{c['error_rate']:.1%}", samples,
                      ", ".join(f"{k} {v}" for k, v in c["mix"].items()))
    console.print(table)
    for probe in data.get("probes", []):
        console.print(f"probe {probe['target']}: " + (f"not probed ({probe['excluded']})" if probe["excluded"] else
                      f"{probe['sent']} sent, {probe['failed']} failed, last {probe['last_outcome'] or 'none yet'}, "
                      f"{probe['input_tokens']} input + {probe['output_tokens']} output tokens"), highlight=False)
    for feed in data["feeds"]:
        console.print(f"feed {feed['provider']}: {feed['state']}" + (f" ({feed['error']})" if feed["error"] else ""),
                      highlight=False)
    open_ = [i for i in data["incidents"] if i["status"] != "resolved"]
    console.print(f"open incidents: {len(open_)}" + "".join(f"\n  {i['id']}: {i['title']} ({i['status']})"
                                                            for i in open_), highlight=False)


def register(group: click.Group) -> None:
    group.add_command(report)
    group.add_command(status)
