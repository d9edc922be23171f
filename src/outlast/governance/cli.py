"""``outlast keys create|list|revoke``, ``outlast audit verify|export``, ``outlast report usage``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

CONFIG = click.option("--config", "config_path", envvar="OUTLAST_CONFIG", type=click.Path(dir_okay=False),
                      help="Configuration file (default: $OUTLAST_CONFIG, ./outlast.yaml, else the environment).")


def _engine(config_path: str | None, *, catch_up_journal: bool = False) -> tuple[Any, Any]:
    from outlast.cli import _load
    from outlast.store import catch_up, open_store, store_url

    config = _load(config_path)
    store = open_store(store_url(config.store))
    if catch_up_journal:
        # A recording gateway journals its audit records with its exchanges: the ones not in the
        # store yet are appended first (or, from a running gateway, given a moment to arrive).
        secret = config.governance.audit_key
        _, pending = catch_up(store, audit_key=secret.get_secret_value() if secret is not None else None)
        if pending:
            click.echo(f"note: {pending} journal records of the running gateway are not in the store yet", err=True)
    return config, store.engine


@click.group("keys")
def keys_group() -> None:
    """Virtual keys for teams and people."""


@keys_group.command("create")
@click.option("--team", required=True, help="The team (or person) the key belongs to.")
@click.option("--routes", default="", help="Comma-separated route names the key may call (default: all).")
@click.option("--max-class", default=None, help="The highest data class the key may send.")
@click.option("--rpm", type=click.IntRange(min=1), default=None, help="Requests per minute.")
@click.option("--name", default=None, help="A note: whose key, what for.")
@CONFIG
def keys_create(team: str, routes: str, max_class: str | None, rpm: int | None, name: str | None,
                config_path: str | None) -> None:
    """Create a key; it is shown once and stored only as a hash."""
    from outlast.governance.keys import create_key

    config, engine = _engine(config_path)
    if max_class is not None and max_class not in config.data_classes:
        raise click.BadParameter(f"not a data class ({', '.join(config.data_classes)})", param_hint="--max-class")
    names = tuple(dict.fromkeys(r.strip() for r in routes.split(",") if r.strip()))
    if names:
        _check_routes(config, names)
    key, record = create_key(engine, team, routes=names, max_class=max_class, rpm=rpm, name=name)
    click.echo(f"key {record.id} for team {team} (shown once; store it now):")
    click.echo(f"  {key}")


def _check_routes(config: Any, names: tuple[str, ...]) -> None:
    """Route names a key may call must be configured: a route's name (``gpt-*`` for a pattern), or
    ``provider/model`` / ``provider/*`` for a configured provider's models called directly. A
    misspelt one would otherwise make a key that can call nothing."""
    configured = list(config.routes)
    if not configured:
        click.echo("warning: no routes are configured here (no configuration file?), so --routes cannot be "
                   "checked; the key may call only models named exactly as given", err=True)
        return
    unknown = [n for n in names if n not in config.routes and not _direct(config, n)]
    if unknown:
        listed = ", ".join(configured)
        providers = ", ".join(f"{p}/*" for p in config.providers)
        raise click.BadParameter(
            f"{', '.join(repr(n) for n in unknown)} {'is not a' if len(unknown) == 1 else 'are not'} configured "
            f"route{'' if len(unknown) == 1 else 's'} (routes: {listed}; or a provider's models directly: "
            f"{providers})", param_hint="--routes")


def _direct(config: Any, name: str) -> bool:
    provider, sep, model = name.partition("/")
    return bool(sep and model) and provider in config.providers


@keys_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked keys.")
@CONFIG
def keys_list(show_all: bool, config_path: str | None) -> None:
    """Keys, without their secrets."""
    from outlast.governance.keys import list_keys

    _, engine = _engine(config_path)
    for key in list_keys(engine):
        if key.revoked is not None and not show_all:
            continue
        state = "revoked" if key.revoked is not None else "active"
        click.echo(f"{key.id}  {state:7s}  team={key.team}  routes={','.join(key.routes) or '*'}  "
                   f"max_class={key.max_class or '-'}  rpm={key.rpm or '-'}")


@keys_group.command("revoke")
@click.argument("key_id")
@CONFIG
def keys_revoke(key_id: str, config_path: str | None) -> None:
    """Revoke a key on every replica (within governance.key_refresh seconds)."""
    from outlast.governance.keys import revoke_key

    _, engine = _engine(config_path)
    if not revoke_key(engine, key_id):
        click.echo(f"no active key {key_id}", err=True)
        sys.exit(1)
    click.echo(f"revoked {key_id}")


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log of routing decisions."""


@audit_group.command("verify")
@CONFIG
def audit_verify(config_path: str | None) -> None:
    """Check the hash chain and its signed head; exit 1 and list every edited, inserted or deleted
    record. Says which key it checked with (governance.audit_key, or the key file in the data
    directory) and warns when that is outlast's public built-in key."""
    from outlast.config import data_dir
    from outlast.governance.audit import resolve_key, verify

    config, engine = _engine(config_path, catch_up_journal=True)
    secret = config.governance.audit_key
    try:
        key = resolve_key(secret.get_secret_value() if secret is not None else None, data_dir())
    except (OSError, ValueError) as error:
        click.echo(f"cannot read the audit key: {error}", err=True)
        sys.exit(2)
    click.echo(f"key: {key.source}")
    warning = key.warning()
    if warning is not None:
        click.echo(f"warning: {warning}", err=True)
    result = verify(engine, key.key)
    if result.ok:
        head = f"; head: record {result.head[0]}, signature {result.head[1]}" if result.head is not None else ""
        click.echo(f"ok: {result.records} records, chain intact{head}")
        return
    click.echo(f"TAMPERED: {result.records} records, {len(result.problems)} problems:")
    for problem in result.problems:
        click.echo(f"  {problem}")
    sys.exit(1)


@audit_group.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: standard output).")
@CONFIG
def audit_export(output: Path | None, config_path: str | None) -> None:
    """Every audit record as JSON lines, with its chain fields."""
    from outlast.governance.audit import export

    _, engine = _engine(config_path, catch_up_journal=True)
    if output is None:
        for line in export(engine):
            click.echo(line.decode(), nl=False)
        return
    with output.open("wb") as file:
        for line in export(engine):
            file.write(line)


@click.command("usage")
@click.option("--days", default=30.0, show_default=True, type=float, help="How far back.")
@click.option("--since", default=None, help="From when instead: epoch seconds, ISO 8601 (2026-11-01) or an age (7d).")
@click.option("--until", default=None, help="Up to when (default: now); the same forms as --since.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@CONFIG
def report_usage(days: float, since: str | None, until: str | None, as_json: bool, config_path: str | None) -> None:
    """Inventory: which teams use which providers and models, volumes and data classes
    (the same rows as GET /outlast/v1/usage)."""
    import orjson

    from outlast.governance.inventory import parse_when, usage

    try:
        start = parse_when(since) if since is not None else None
        end = parse_when(until) if until is not None else None
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    _, engine = _engine(config_path)
    rows = usage(engine, days=days, since=start, until=end)
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"{'team':20s} {'provider/model':40s} {'class':14s} {'requests':>8s} {'tokens in':>10s} "
               f"{'tokens out':>10s} {'errors':>6s}")
    for row in rows:
        click.echo(f"{row['team']:20s} {row['provider'] + '/' + row['model']:40s} {row['data_class']:14s} "
                   f"{row['requests']:8d} {row['input_tokens']:10d} {row['output_tokens']:10d} {row['errors']:6d}")


def register(group: click.Group) -> None:
    group.add_command(keys_group)
    group.add_command(audit_group)
    report = group.commands.get("report")
    if isinstance(report, click.Group):
        report.add_command(report_usage)
