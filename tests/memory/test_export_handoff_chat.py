"""Export formats, the hand-off bundle, ``outlast chat`` through a real gateway, and ``store vacuum``."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from outlast.app import build_gateway
from outlast.cli import main
from outlast.config import validate
from outlast.dialects.canonical import Message, Text, ToolUse
from outlast.health.persist import HealthStore
from outlast.health.uptime import day_of
from outlast.memory.export import iso
from outlast.serving import BackgroundServer
from outlast.store.records import exchange_record
from outlast.store.sql import SqlStore
from tests.conftest import MASTER_KEY, gateway_document
from tests.store.helpers import make_exchange, user


def _coding_conversation(store: SqlStore) -> str:
    call = ToolUse("toolu_9", "Bash", {"command": "pytest tests/store -q"})
    asked = [user("The recorder drops exchanges when src/outlast/store/recorder.py restarts. Fix it."),
             Message("assistant", (Text("Plan:\n1. Reproduce with a test\n2. Fix the spool replay\n"
                                        "3. Run the suite"), call)),
             user("Tests fail in tests/store/test_recorder.py. Should I keep the torn line?")]
    exchange = make_exchange(asked, "Next steps:\n- skip the torn line\n- rerun `pytest`\n\n"
                             "```bash\nruff check src/outlast/store\n```\nDo you want me to commit it?")
    placed = store.write_exchanges([exchange_record(exchange)])
    return placed[exchange.id] or ""


def test_export_one_as_json_and_all_as_jsonl_and_markdown_files(cli_store: SqlStore, tmp_path: Path,
                                                                fixtures_dir: Path) -> None:
    cid = _coding_conversation(cli_store)
    runner = CliRunner()
    assert runner.invoke(main, ["import", "chatgpt", str(fixtures_dir / "exports" /
                                                         "chatgpt-conversations-example.json")]).exit_code == 0
    one = runner.invoke(main, ["conversations", "export", cid[:10], "--format", "json"])
    assert one.exit_code == 0, one.output
    document = orjson.loads(one.stdout)
    assert document["id"] == cid and document["source"] == "gateway"
    assert document["messages"][1]["content"][1] == {"type": "tool_use", "id": "toolu_9", "name": "Bash",
                                                     "input": {"command": "pytest tests/store -q"}}
    assert document["created"].endswith("Z")
    lines = tmp_path / "all.jsonl"
    every = ["conversations", "export", "--all"]
    assert runner.invoke(main, [*every, "--format", "jsonl", "-o", str(lines)]).exit_code == 0
    exported = [orjson.loads(line) for line in lines.read_bytes().splitlines()]
    assert {d["source"] for d in exported} == {"gateway", "chatgpt"}
    array = tmp_path / "all.json"
    assert runner.invoke(main, [*every, "--format", "json", "-o", str(array)]).exit_code == 0
    assert len(orjson.loads(array.read_bytes())) == 2
    folder = tmp_path / "md"
    folder.mkdir()
    assert runner.invoke(main, ["conversations", "export", "--all", "-o", str(folder)]).exit_code == 0
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 2
    fresh = tmp_path / "not-yet"  # a directory that does not exist yet, named with a trailing slash
    assert runner.invoke(main, ["conversations", "export", "--all", "-o", f"{fresh}/"]).exit_code == 0
    assert sorted(p.name for p in fresh.iterdir()) == files
    markdown = (folder / f"{cid}.md").read_text()
    assert markdown.startswith("# The recorder drops exchanges")
    assert "**Tool call** `Bash`" in markdown and "## Assistant" in markdown
    shown = runner.invoke(main, ["conversations", "show", cid])
    assert shown.exit_code == 0 and "Fix the spool replay" in shown.output
    found = runner.invoke(main, ["conversations", "search", "torn", "line"])
    assert found.exit_code == 0 and cid in found.output
    listed = runner.invoke(main, ["conversations", "list"])
    assert cid in listed.output and "chatgpt" in listed.output
    assert runner.invoke(main, ["conversations", "show", "nope"]).exit_code == 1


def test_conversations_delete_asks_first_then_removes_it_from_list_search_and_export(cli_store: SqlStore,
                                                                                    fixtures_dir: Path) -> None:
    cid = _coding_conversation(cli_store)
    runner = CliRunner()
    assert runner.invoke(main, ["import", "chatgpt", str(fixtures_dir / "exports" /
                                                         "chatgpt-conversations-example.json")]).exit_code == 0
    declined = runner.invoke(main, ["conversations", "delete", cid[:10]], input="n\n")
    assert declined.exit_code == 1 and "Delete " + cid in declined.output and "gateway" in declined.output
    assert runner.invoke(main, ["conversations", "show", cid]).exit_code == 0  # still there
    deleted = runner.invoke(main, ["conversations", "delete", cid[:10]], input="y\n")
    assert deleted.exit_code == 0, deleted.output
    assert f"deleted {cid}: 4 messages, 1 exchanges" in deleted.output
    assert runner.invoke(main, ["conversations", "show", cid]).exit_code == 1
    assert runner.invoke(main, ["conversations", "search", "torn", "line"]).exit_code == 1  # no matches
    assert cid not in runner.invoke(main, ["conversations", "list"]).output
    imported = cli_store.conversation_ids()
    assert len(imported) == 1 and imported[0].startswith("chatgpt-")
    quiet = runner.invoke(main, ["conversations", "delete", "--yes", imported[0]])
    assert quiet.exit_code == 0 and "Delete " not in quiet.output
    assert cli_store.conversation_ids() == []
    assert runner.invoke(main, ["conversations", "delete", "--yes", "nope"]).exit_code == 1


def test_handoff_names_task_plan_files_commands_tools_and_questions(cli_store: SqlStore) -> None:
    cid = _coding_conversation(cli_store)
    result = CliRunner().invoke(main, ["handoff", cid])
    assert result.exit_code == 0, result.output
    text = result.stdout
    sections = text.split("\n## ")
    section = {s.split("\n", 1)[0]: s.split("\n", 1)[1] for s in sections[1:7]}
    assert "Should I keep the torn line?" in section["Task, as last stated"]
    assert "- skip the torn line" in section["Plan, as last stated"]
    assert "`src/outlast/store/recorder.py`" in section["Files mentioned"]
    assert "`tests/store/test_recorder.py`" in section["Files mentioned"]
    assert "pytest tests/store -q" in section["Commands mentioned"]
    assert "ruff check src/outlast/store" in section["Commands mentioned"]
    assert "`Bash`" in section["Tool calls"]
    assert "(assistant) Do you want me to commit it?" in section["Open questions"]
    assert f"outlast chat --resume {cid}" in text
    assert "## User" in text  # the transcript follows


def test_chat_resumes_an_imported_conversation_through_the_gateway(sim: Any, data_dir: Path,
                                                                  fixtures_dir: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["import", "chatgpt", str(fixtures_dir / "exports" /
                                                         "chatgpt-conversations-example.json")]).exit_code == 0
    gateway = build_gateway(validate(gateway_document(sim.url)))
    with BackgroundServer(gateway) as server:
        result = runner.invoke(main, ["chat", "--url", server.url, "--key", MASTER_KEY, "--model", "to-openai",
                                      "--resume", "6712a0c4"], input="and what about 503s?\n/exit\n")
        assert result.exit_code == 0, result.output
    assert result.stdout.strip()  # the streamed answer
    store = SqlStore(f"sqlite:///{data_dir / 'outlast.db'}")
    conversation = store.get_conversation("chatgpt-6712a0c4-0000-4000-8000-000000000001")
    store.close()
    assert conversation is not None
    assert [m.role for m in conversation.messages] == ["user", "assistant", "user", "assistant"]
    assert conversation.messages[2].text == "and what about 503s?"
    assert conversation.messages[3].text == result.stdout.strip()
    sent = sim.requests("openai")[-1]
    assert "Use exponential backoff" in orjson.dumps(sent).decode()  # the history went with it


def _export_with_a_reasoning_only_node(path: Path) -> Path:
    """A ChatGPT export whose answer follows a "thoughts" node (reasoning, no text)."""
    def node(ident: str, parent: str | None, child: str | None, role: str, content: dict[str, Any]) -> dict[str, Any]:
        return {"id": ident, "parent": parent, "children": [child] if child else [],
                "message": {"id": ident, "author": {"role": role}, "create_time": 1750000000.0,
                            "content": content, "metadata": {}}}
    mapping = {
        "u1": node("u1", None, "t1", "user", {"content_type": "text", "parts": ["Which database for the store?"]}),
        "t1": node("t1", "u1", "a1", "assistant", {"content_type": "thoughts", "thoughts": [
            {"summary": "Weighing", "content": "SQLite is embedded; PostgreSQL scales."}]}),
        "a1": node("a1", "t1", None, "assistant", {"content_type": "text", "parts": ["SQLite, then PostgreSQL."]}),
    }
    path.write_bytes(orjson.dumps([{"id": "reason-1", "title": "Database", "create_time": 1750000000.0,
                                    "update_time": 1750000100.0, "current_node": "a1", "mapping": mapping}]))
    return path


def test_chat_resume_lands_the_new_turn_after_a_reasoning_only_message(sim: Any, data_dir: Path,
                                                                       tmp_path: Path) -> None:
    runner = CliRunner()
    export = _export_with_a_reasoning_only_node(tmp_path / "conversations.json")
    assert runner.invoke(main, ["import", "chatgpt", str(export)]).exit_code == 0
    gateway = build_gateway(validate(gateway_document(sim.url)))
    with BackgroundServer(gateway) as server:
        for turn in ("why not both?", "and for search?"):
            result = runner.invoke(main, ["chat", "--url", server.url, "--key", MASTER_KEY, "--model", "to-openai",
                                          "--resume", "chatgpt-reason-1"], input=f"{turn}\n/exit\n")
            assert result.exit_code == 0, result.output
    store = SqlStore(f"sqlite:///{data_dir / 'outlast.db'}")
    conversation = store.get_conversation("chatgpt-reason-1")
    store.close()
    assert conversation is not None
    assert [(m.role, bool(m.text)) for m in conversation.messages] == [
        ("user", True), ("assistant", False), ("assistant", True),
        ("user", True), ("assistant", True), ("user", True), ("assistant", True)]
    assert [conversation.messages[i].text for i in (3, 5)] == ["why not both?", "and for search?"]
    assert conversation.messages[1].parts[0]["type"] == "thinking"
    # Importing the same export again keeps both turns added through the gateway.
    again = runner.invoke(main, ["import", "chatgpt", str(export)])
    assert again.exit_code == 0 and "0 updated, 1 already imported" in again.output
    store = SqlStore(f"sqlite:///{data_dir / 'outlast.db'}")
    kept = store.get_conversation("chatgpt-reason-1")
    store.close()
    assert kept is not None and kept.summary.message_count == 7


def test_store_vacuum_applies_retention(cli_store: SqlStore) -> None:
    old = make_exchange([user("ancient")], "history")
    old.created = time.time() - 100 * 86400
    cli_store.write_exchanges([exchange_record(old), exchange_record(make_exchange([user("new")], "fresh"))])
    health = HealthStore(cli_store.engine)
    today = day_of(time.time())
    health.save_uptime([("openai", today - timedelta(days=back), {"major_outage": 1.0}) for back in (1, 120)])
    result = CliRunner().invoke(main, ["store", "vacuum", "--max-age-days", "30"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "1 exchanges and 1 conversations removed" in output
    assert cli_store.stats().exchanges == 1
    # the health history beyond `health.uptime_days` (90) goes too
    assert [d for _, d, _ in health.load_uptime(today - timedelta(days=365))] == [today - timedelta(days=1)]
    newest = cli_store.stats().newest
    assert newest is not None and f"newest exchange {iso(newest)}" in output


def test_store_vacuum_max_age_zero_removes_everything_recorded_but_no_import(cli_store: SqlStore,
                                                                             fixtures_dir: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["import", "chatgpt", str(fixtures_dir / "exports" /
                                                         "chatgpt-conversations-example.json")]).exit_code == 0
    recent = make_exchange([user("a minute ago")], "recorded")
    recent.created = time.time() - 60
    cli_store.write_exchanges([exchange_record(recent)])
    result = runner.invoke(main, ["store", "vacuum", "--max-age-days", "0"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "1 exchanges and 1 conversations removed" in output and "no exchanges" in output
    assert [c.source for c in cli_store.list_conversations()] == ["chatgpt"]
    assert runner.invoke(main, ["store", "vacuum", "--max-age-days", "-1"]).exit_code == 2
