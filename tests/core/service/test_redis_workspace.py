"""RedisWorkspaceStore keeps the WorkspaceStore contract (the folder store's own tests), against a real Redis."""

from __future__ import annotations

import pytest

from cnn_core.service import workspace
from cnn_core.service.redis_queue import ServiceUnavailable, connect
from cnn_core.service.redis_workspace import RedisWorkspaceStore
from cnn_core.service.settings import Settings
from tests.core.service import test_workspace as contract
from tests.core.service.redis_harness import redis_server


@pytest.fixture
def store(redis_url):
    conn = connect(redis_url)
    conn.flushdb()
    return RedisWorkspaceStore(conn, max_bytes=10_000)


@pytest.mark.parametrize("check", [
    contract.test_put_get_names_delete_clear,
    contract.test_the_size_cap_refuses_a_put_that_would_exceed_it_and_counts_replacements_once,
    contract.test_workspace_models_runs_drawings_and_meta,
    contract.test_a_model_whose_description_cannot_be_written_is_not_left_half,
], ids=lambda check: check.__name__)
def test_the_redis_store_keeps_the_store_contract(store, check):
    check(store)


@pytest.mark.parametrize("name", ["../x", ".hidden", "a/b", ""])
def test_entry_names_and_ids_are_checked_before_any_key_is_built(store, name):
    with pytest.raises(ValueError):
        store.put(workspace.new_id(), "runs", name, b"1")
    with pytest.raises(ValueError):
        store.put("../../etc", "runs", "a.json", b"1")
    assert store.redis.keys("*") == []


def test_expiry_removes_only_idle_workspaces_and_a_look_around_leaves_nothing(store):
    idle, busy, visitor = workspace.new_id(), workspace.new_id(), workspace.new_id()
    store.put(idle, "runs", "r.json", b"{}")
    store.put(busy, "runs", "r.json", b"{}")
    store.touch(visitor)
    assert store.redis.keys(f"*{visitor}*") == []
    assert store.expire(3600) == []
    store.redis.zadd("cnn:ws:touched", {idle: 1.0})  # last used in 1970
    assert store.expire(3600) == [idle]
    assert store.names(idle, "runs") == [] and store.used_bytes(idle) == 0
    assert store.names(busy, "runs") == ["r.json"]


def test_two_replicas_share_one_workspace(redis_url):
    ws = workspace.new_id()
    replica_a = RedisWorkspaceStore(connect(redis_url), max_bytes=10_000)
    replica_b = RedisWorkspaceStore(connect(redis_url), max_bytes=10_000)
    key = workspace.Workspace(replica_a, ws).add_model(b"keras", {"name": "mine", "dataset": "mnist"})
    assert [m["name"] for m in workspace.Workspace(replica_b, ws).models()] == ["mine"]
    assert workspace.Workspace(replica_b, ws).model_bytes(key) == b"keras"


def test_make_store_picks_redis_with_a_redis_url(redis_url, tmp_path):
    chosen = workspace.make_store(Settings(redis_url=redis_url, workspaces_dir=tmp_path))
    assert isinstance(chosen, RedisWorkspaceStore)
    assert isinstance(workspace.make_store(Settings(workspaces_dir=tmp_path)), workspace.FolderWorkspaceStore)


def test_redis_down_is_a_one_sentence_error():
    from tests.core.service.conftest import require_redis

    require_redis()
    with redis_server() as server:
        store = RedisWorkspaceStore(connect(server.url), max_bytes=10_000)
        ws = workspace.new_id()
        store.put(ws, "runs", "r.json", b"{}")
        server.stop()
        with pytest.raises(ServiceUnavailable, match="unavailable"):
            store.get(ws, "runs", "r.json")
        server.start()
        assert store.names(ws, "runs") == []  # a restarted Redis without persistence starts empty
        store.put(ws, "runs", "r.json", b"{}")
        assert store.get(ws, "runs", "r.json") == b"{}"
