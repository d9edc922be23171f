from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from outlast.store.sql import SqlStore
from tests.store.conftest import pg_server, pg_url, store, store_url  # noqa: F401  (the same stores)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's default store (SQLite in the data directory), in a temporary directory."""
    directory = tmp_path / "data"
    monkeypatch.setenv("OUTLAST_DATA_DIR", str(directory))
    monkeypatch.delenv("OUTLAST_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return directory


@pytest.fixture
def cli_store(data_dir: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{data_dir / 'outlast.db'}")
    opened.migrate()
    yield opened
    opened.close()
