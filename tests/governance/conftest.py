"""Real services for governance: the local PostgreSQL (as tests/store uses it) and Redis (as
tests/routing uses it). Without them the tests are skipped, unless ``OUTLAST_REQUIRE_SERVICES=1``
(CI): then they fail."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.routing.conftest import REDIS, _redis_up
from tests.store.conftest import pg_server, pg_url  # noqa: F401  (the same PostgreSQL fixtures)


@pytest.fixture
def redis_url() -> str:
    """A Redis URL with a health channel of this test's own."""
    if not _redis_up():
        message = f"Redis is not reachable at {REDIS[0]}:{REDIS[1]}"
        if os.environ.get("OUTLAST_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " (OUTLAST_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    return f"redis://{REDIS[0]}:{REDIS[1]}/0?channel=test-{uuid.uuid4().hex}"
