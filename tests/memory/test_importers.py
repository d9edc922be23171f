"""Import of the real export formats (fixtures), idempotence, broken files, and a large export."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from outlast.cli import main
from outlast.memory.importers import import_file
from outlast.store.sql import SqlStore


def test_claude_export_with_blocks_keeps_thinking_attachments_and_files(store: SqlStore, fixtures_dir: Path) -> None:
    report = import_file(store, fixtures_dir / "exports" / "claude-ai-conversations-with-blocks.json", "claude")
    assert (report.result.added, report.problems, report.broken) == (1, [], None)
    conversation = store.get_conversation("claude-1db4c66e-b369-4e3a-96a9-6c16f8301ee8")
    assert conversation is not None and conversation.summary.title == "Bash Command for OpenAI API"
    user, answer = conversation.messages
    assert user.role == "user" and '[attachment req.json]\n{"model":"gpt-4o"}' in user.text
    assert "[file CleanShot 20241017 at 22.29.542x.png]" in user.text
    assert answer.parts[0] == {"type": "thinking", "thinking": "User wants curl..."}
    assert answer.text == "To turn this into a bash command, use curl with the JSON body..."
    assert [h.conversation_id for h in store.search("curl JSON")] == [conversation.id]


def test_claude_plain_export(store: SqlStore, fixtures_dir: Path) -> None:
    report = import_file(store, fixtures_dir / "exports" / "claude-ai-conversations-plain.json", "claude")
    assert report.result.added == 1
    conversation = store.get_conversation("claude-1db4c66e")
    assert conversation is not None
    assert [m.role for m in conversation.messages] == ["user", "assistant"]
    assert conversation.messages[1].text.startswith(" To turn this into a bash command")


def test_chatgpt_follows_the_current_branch_only(store: SqlStore, fixtures_dir: Path) -> None:
    report = import_file(store, fixtures_dir / "exports" / "chatgpt-conversations-example.json", "chatgpt")
    assert report.result.added == 1
    conversation = store.get_conversation("6712a0c4")  # a prefix of the export's own id works too
    assert conversation is not None
    assert [m.text for m in conversation.messages] == [
        "How should I retry 529s?", "Use exponential backoff with full jitter, and honour retry-after."]
    assert conversation.summary.model == "gpt-4o"
    assert conversation.messages[0].created == pytest.approx(1729230611.0)
    assert store.search("original answer") == []  # the regenerated-away answer is not imported


def test_importing_twice_adds_nothing_and_a_zip_is_read_like_the_json(store: SqlStore, fixtures_dir: Path,
                                                                       tmp_path: Path) -> None:
    source = fixtures_dir / "exports" / "chatgpt-conversations-example.json"
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(source, "conversations.json")
        z.writestr("chat.html", "<html></html>")
    first = import_file(store, archive, "chatgpt")
    again = import_file(store, source, "chatgpt")
    assert (first.result.added, again.result.added, again.result.unchanged) == (1, 0, 1)
    stats = store.stats()
    assert (stats.conversations, stats.messages) == (1, 2)


def _chatgpt(n: int, words: int = 30) -> dict[str, object]:
    text = " ".join(f"word{n}x{i}" for i in range(words))
    mapping = {"root": {"id": "root", "message": None, "parent": None, "children": ["u"]},
               "u": {"id": "u", "parent": "root", "children": ["a"], "message": {
                   "author": {"role": "user"}, "create_time": 1.7e9 + n,
                   "content": {"content_type": "text", "parts": [f"question {n}: {text}"]}}},
               "a": {"id": "a", "parent": "u", "children": [], "message": {
                   "author": {"role": "assistant"}, "create_time": 1.7e9 + n + 1, "metadata": {"model_slug": "gpt-4o"},
                   "content": {"content_type": "text", "parts": [f"answer {n}: {text}"]}}}}
    return {"id": f"conv-{n:05d}", "title": f"Conversation {n}", "create_time": 1.7e9 + n,
            "update_time": 1.7e9 + n + 1, "current_node": "a", "mapping": mapping}


def test_broken_file_imports_what_is_good_and_says_where(store: SqlStore, tmp_path: Path) -> None:
    good = [_chatgpt(n) for n in range(3)]
    bad = {"id": "conv-bad", "title": "no mapping"}
    text = json.dumps([good[0], bad, good[1], good[2]])
    truncated = tmp_path / "conversations.json"
    truncated.write_text(text[: text.index('"conv-00002"') + 40])  # the file stops inside the 4th
    report = import_file(store, truncated, "chatgpt")
    assert report.result.added == 2
    assert report.problems == [f"{truncated}: conversation #2 (conv-bad): missing field 'mapping'; skipped"]
    assert report.broken is not None and "after conversation #3" in report.broken and "near byte" in report.broken
    assert store.get_conversation("chatgpt-conv-00001") is not None
    not_a_list = tmp_path / "object.json"
    not_a_list.write_text('{"conversations": []}')
    assert "expected a JSON array" in (import_file(store, not_a_list, "chatgpt").broken or "")


def test_cli_import_prints_a_summary_and_fails_on_a_broken_file(cli_store: SqlStore, fixtures_dir: Path,
                                                                tmp_path: Path) -> None:
    runner = CliRunner()
    export = fixtures_dir / "exports" / "claude-ai-conversations-with-blocks.json"
    result = runner.invoke(main, ["import", "claude", str(export)])
    assert result.exit_code == 0, result.output
    assert "1 added, 0 updated, 0 already imported, 0 skipped" in " ".join(result.output.split())
    broken = tmp_path / "broken.json"
    broken.write_text("[{\"uuid\": \"x\", ")
    result = runner.invoke(main, ["import", "claude", str(broken)])
    assert result.exit_code == 1 and "breaks off" in result.output


@pytest.mark.slow
def test_ten_thousand_conversations_import_in_bounded_memory(tmp_path: Path) -> None:
    export = tmp_path / "conversations.json"
    with open(export, "wb") as file:
        file.write(b"[")
        for n in range(10_000):
            file.write((b"," if n else b"") + orjson.dumps(_chatgpt(n, words=300)))
        file.write(b"]")
    size = export.stat().st_size
    assert size > 60_000_000
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from outlast.store.sql import SqlStore\n"
        "from outlast.memory.importers import import_file\n"
        "store = SqlStore(sys.argv[2]); store.migrate()\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "report = import_file(store, Path(sys.argv[1]), 'chatgpt')\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(report.result.added, report.read, len(report.problems), (peak - base) * 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(export), f"sqlite:///{tmp_path / 'big.db'}"],
                         check=True, capture_output=True, text=True, timeout=600).stdout.split()
    added, read, problems, grown = (int(v) for v in out)
    assert (added, read, problems) == (10_000, 10_000, 0)
    assert grown < size / 3, f"memory grew by {grown} bytes importing a {size}-byte file"
