"""A real redis-server per test module for the Redis tests (skipped without one, unless REQUIRE_REDIS=1)."""

from __future__ import annotations

import os

import pytest

from tests.core.service.redis_harness import redis_missing_message, redis_server


def require_redis() -> None:
    missing = redis_missing_message()
    if missing:
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail(missing)
        pytest.skip(missing)


@pytest.fixture(scope="module")
def redis_url():
    require_redis()
    with redis_server() as server:
        yield server.url
