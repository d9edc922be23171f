"""The memory commands: ``conversations``, ``import``, ``handoff``, ``chat`` and ``store``.
Registered on the ``outlast`` group by ``outlast.cli``; each is a thin shell over the store
and the modules beside this one."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from outlast.memory.export import FORMATS, iso, render
from outlast.store import catch_up, open_store, store_url
from outlast.store.base import Conversation
from outlast.store.sql import SqlStore

err = Console(stderr=True, highlight=False)
config_option = click.option("--config", "config_path", envvar="OUTLAST_CONFIG", type=click.Path(dir_okay=False),
                             help="Configuration file (its `store` is used; default: SQLite in the data directory).")


def _store(config_path: str | None) -> SqlStore:
    from outlast.cli import _load

    config = _load(config_path)
    try:
        store = open_store(store_url(config.store))
        # The gateway journals exchanges first and stores them a moment later: catch up first.
        secret = config.governance.audit_key
        ingested, pending = catch_up(store, audit_key=secret.get_secret_value() if secret is not None else None)
    except Exception as error:
        err.print(f"[bold red]cannot open the store[/] {store_url(config.store)}: {error}")
        sys.exit(1)
    if ingested:
        err.print(f"[dim]stored {ingested} exchanges waiting in the journal[/]")
    if pending:
        err.print(f"[yellow]{pending} exchanges just recorded by the running gateway are not in the store yet[/] "
                  "(it stores them in a moment)")
    return store


def _conversation(store: SqlStore, conversation_id: str) -> Conversation:
    found = store.get_conversation(conversation_id)
    if found is None:
        err.print(f"[bold red]no conversation[/] {conversation_id!r} (or the prefix is not unique); "
                  "`outlast conversations list` shows them")
        sys.exit(1)
    return found


def _when(value: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(value))


# --------------------------------------------------------------------------- conversations


@click.group("conversations")
def conversations_group() -> None:
    """Browse, search and export stored and imported conversations."""


@conversations_group.command("list")
@config_option
@click.option("--limit", default=30, show_default=True, type=int)
@click.option("--offset", default=0, type=int)
def conversations_list(config_path: str | None, limit: int, offset: int) -> None:
    """Most recently active first."""
    store = _store(config_path)
    table = Table(box=None)
    table.add_column("id", no_wrap=True)
    for name in ("updated", "source", "msgs", "title"):
        table.add_column(name)
    for c in store.list_conversations(limit=limit, offset=offset):
        table.add_row(c.id, _when(c.updated), c.source, str(c.message_count), c.title)
    Console(highlight=False).print(table)


@conversations_group.command("show")
@config_option
@click.argument("conversation_id")
def conversations_show(config_path: str | None, conversation_id: str) -> None:
    """Print one conversation as Markdown (an id or a unique prefix)."""
    click.echo(render(_conversation(_store(config_path), conversation_id), "md").decode())


@conversations_group.command("search")
@config_option
@click.argument("query", nargs=-1, required=True)
@click.option("--limit", default=20, show_default=True, type=int)
def conversations_search(config_path: str | None, query: tuple[str, ...], limit: int) -> None:
    """Messages containing every word of QUERY."""
    hits = _store(config_path).search(" ".join(query), limit=limit)
    if not hits:
        err.print("no matches")
        sys.exit(1)
    console = Console(highlight=False)
    for hit in hits:
        console.print(f"[bold]{hit.conversation_id}[/] #{hit.position} {hit.role} · {hit.title}")
        console.print("    " + hit.snippet, markup=False)


@conversations_group.command("delete")
@config_option
@click.argument("conversation_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask first.")
def conversations_delete(config_path: str | None, conversation_id: str, yes: bool) -> None:
    """Delete one conversation (an id or a unique prefix): its messages and the exchanges recorded in it."""
    store = _store(config_path)
    summary = _conversation(store, conversation_id).summary
    if not yes:
        click.confirm(f"Delete {summary.id} ({summary.source}, {summary.message_count} messages: "
                      f"{summary.title!r})?", abort=True, err=True)
    removed = store.delete_conversation(summary.id)
    click.echo(f"deleted {summary.id}: {summary.message_count} messages, {removed.exchanges} exchanges "
               "(`outlast store vacuum` gives the space back and clears the freed pages)")


@conversations_group.command("export")
@config_option
@click.argument("conversation_id", required=False)
@click.option("--all", "everything", is_flag=True, help="Every conversation.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True)
@click.option("--output", "-o", "output_arg", type=click.Path(),
              help="File (or, for --all as Markdown, a directory: one file each); default: standard output.")
def conversations_export(config_path: str | None, conversation_id: str | None, everything: bool, fmt: str,
                         output_arg: str | None) -> None:
    """Export one conversation, or all of them (Markdown, JSON or JSON Lines)."""
    output = Path(output_arg) if output_arg else None
    if bool(conversation_id) == everything:
        raise click.UsageError("give a CONVERSATION_ID or --all")
    store = _store(config_path)
    if conversation_id:
        data = render(_conversation(store, conversation_id), fmt)
        if output is None:
            sys.stdout.buffer.write(data)
        else:
            output.write_bytes(data)
        return
    ids = store.conversation_ids()
    # A directory: one that exists, or a name ending in a separator (Path() would drop it).
    per_file = fmt == "md" and output_arg is not None and (Path(output_arg).is_dir() or output_arg.endswith(os.sep))
    if per_file and output is not None:
        output.mkdir(parents=True, exist_ok=True)
    sink = sys.stdout.buffer if output is None else None
    handle = None if per_file or output is None else open(output, "wb")  # noqa: SIM115
    target = sink or handle
    with Progress(TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=output is None) as progress:
        task = progress.add_task("export", total=len(ids))
        if fmt == "json" and target is not None:
            target.write(b"[\n")
        for n, cid in enumerate(ids):
            conversation = store.get_conversation(cid)
            if conversation is None:  # removed meanwhile
                continue
            data = render(conversation, fmt)
            if per_file and output is not None:
                (output / f"{_safe_name(cid)}.md").write_bytes(data)
            elif target is not None:
                if fmt == "json" and n:
                    target.write(b",\n")
                if fmt == "md" and n:
                    target.write(b"\n\n---\n\n")
                target.write(data)
            progress.advance(task)
        if fmt == "json" and target is not None:
            target.write(b"\n]\n")
    if handle is not None:
        handle.close()
    if output is not None:
        err.print(f"exported {len(ids)} conversations to {output}")


def _safe_name(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in value)[:150]


# --------------------------------------------------------------------------- import


@click.group("import")
def import_group() -> None:
    """Import a data export from claude.ai or ChatGPT (zip or conversations.json). Idempotent."""


def _import(config_path: str | None, file: Path, source: str) -> None:
    from outlast.memory.importers import import_file

    store = _store(config_path)
    with Progress(TextColumn(f"importing {file.name}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=err) as progress:
        task = progress.add_task("import", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            report = import_file(store, file, source, advance)
        except (OSError, ValueError) as error:
            err.print(f"[bold red]cannot import[/] {error}")
            sys.exit(1)
    r = report.result
    err.print(f"{report.file}: read {report.read} conversations: {r.added} added, {r.updated} updated, "
              f"{r.unchanged} already imported, {len(report.problems)} skipped")
    for problem in report.problems[:20]:
        err.print(f"  [yellow]skipped[/] {problem}")
    if len(report.problems) > 20:
        err.print(f"  … and {len(report.problems) - 20} more")
    if report.broken:
        err.print(f"[bold red]error:[/] {report.broken}")
        sys.exit(1)


@import_group.command("claude")
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_claude(config_path: str | None, file: Path) -> None:
    """claude.ai's data export (Settings → Privacy → Export data)."""
    _import(config_path, file, "claude")


@import_group.command("chatgpt")
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_chatgpt(config_path: str | None, file: Path) -> None:
    """ChatGPT's data export (Settings → Data controls → Export); the current branch of each chat."""
    _import(config_path, file, "chatgpt")


# --------------------------------------------------------------------------- handoff, chat, store


@click.command("handoff")
@config_option
@click.argument("conversation_id")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Default: standard output.")
def handoff(config_path: str | None, conversation_id: str, output: Path | None) -> None:
    """A Markdown hand-off bundle: task, plan, files, commands, tool calls, open questions, transcript."""
    from outlast.memory.handoff import handoff_markdown

    text = handoff_markdown(_conversation(_store(config_path), conversation_id))
    if output is None:
        click.echo(text)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"hand-off written to {output}")


@click.command("chat")
@config_option
@click.option("--model", "-m", default="claude-sonnet-4-6", show_default=True, help="A route name.")
@click.option("--resume", "resume_id", help="Continue a stored or imported conversation (id or unique prefix).")
@click.option("--url", default="http://127.0.0.1:8484", show_default=True, envvar="OUTLAST_URL",
              help="The running gateway.")
@click.option("--key", envvar="OUTLAST_API_KEY", help="An outlast key (default: $OUTLAST_API_KEY, the master key).")
def chat(config_path: str | None, model: str, resume_id: str | None, url: str, key: str | None) -> None:
    """Chat in the terminal through the gateway; every turn is stored. /exit or Ctrl-D ends."""
    from outlast.memory.chat import ChatError, default_key, history, run_chat
    from outlast.store.threads import new_conversation_id

    messages = []
    conversation_id = new_conversation_id()
    if resume_id:
        conversation = _conversation(_store(config_path), resume_id)
        conversation_id = conversation.id
        messages = history(conversation)
        err.print(f"resuming {conversation.summary.title!r}: {len(messages)} messages")
    if key is None:
        from outlast.cli import _load

        config = _load(config_path)
        key = default_key() or (config.master_key.get_secret_value() if config.master_key else None)
    interactive = sys.stdin.isatty()
    err.print(f"conversation {conversation_id} · model {model} · /exit to leave")

    def read() -> str | None:
        try:
            return input("you> " if interactive else "")
        except EOFError:
            return None

    try:
        run_chat(url, key, model, conversation_id, messages, read, sys.stdout)
    except ChatError as error:
        err.print(f"[bold red]error:[/] {error}")
        sys.exit(1)
    except KeyboardInterrupt:
        pass
    err.print(f"saved as conversation {conversation_id}: `outlast conversations show {conversation_id}`")


@click.group("store")
def store_group() -> None:
    """Maintain the store."""


@store_group.command("vacuum")
@config_option
@click.option("--max-age-days", type=click.FloatRange(min=0),
              help="Also remove what was recorded longer ago (0: everything recorded so far; "
                   "default: the configured retention).")
@click.option("--max-size-mb", type=click.FloatRange(min=0),
              help="Also remove the oldest recorded beyond this size (default: configured).")
def store_vacuum(config_path: str | None, max_age_days: float | None, max_size_mb: float | None) -> None:
    """Apply retention (imported conversations are kept), prune the health history beyond its
    `health.uptime_days`, then give freed space back to the file system."""
    from outlast.cli import _load
    from outlast.store.recorder import apply_retention

    config = _load(config_path)
    retention = config.retention
    store = _store(config_path)
    before = store.stats()
    apply_retention(store, retention.max_age_days if max_age_days is None else max_age_days,
                    retention.max_size_mb if max_size_mb is None else max_size_mb,
                    health_days=config.health.uptime_days)
    store.vacuum()
    after = store.stats()
    newest = f"newest exchange {iso(after.newest)}" if after.newest is not None else "no exchanges"
    err.print(f"{before.exchanges - after.exchanges} exchanges and {before.conversations - after.conversations} "
              f"conversations removed; {after.exchanges} exchanges, {after.conversations} conversations, "
              f"{after.bytes / 1e6:.1f} MB stored; {newest}")


COMMANDS = (conversations_group, import_group, handoff, chat, store_group)


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)
