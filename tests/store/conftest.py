"""Stores on the real servers: a SQLite file in a temporary directory, and a fresh schema in
the local PostgreSQL (``OUTLAST_TEST_PG``, default ``postgresql://postgres@127.0.0.1:5432/test``).

Without PostgreSQL its tests are skipped, unless ``OUTLAST_REQUIRE_SERVICES=1`` (CI): then
they fail, so a broken service can never pass for a green run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from outlast.store.sql import SqlStore, engine_url

PG_URL = os.environ.get("OUTLAST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _unreachable(url: str) -> str | None:
    engine = sa.create_engine(engine_url(url), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return None
    except sa.exc.OperationalError as error:
        return str(error).splitlines()[0]
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL URL, or skip (fail under ``OUTLAST_REQUIRE_SERVICES=1``) when it is down."""
    problem = _unreachable(PG_URL)
    if problem is not None:
        message = f"PostgreSQL at {PG_URL} is unreachable: {problem}"
        if os.environ.get("OUTLAST_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " (OUTLAST_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    return PG_URL


def schema_url(base: str, schema: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A URL whose tables live in a schema of their own, dropped afterwards."""
    schema = f"outlast_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(engine_url(pg_server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(pg_server, schema)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outlast.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    store = SqlStore(store_url)
    store.migrate()
    yield store
    store.close()
