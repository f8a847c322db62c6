"""`RedisWorkspaceStore`: workspaces kept in Redis, so every replica behind a proxy sees the same work.

Chosen by `workspace.make_store` when `CNN_REDIS_URL` is set (the same Redis the training runs
use). Layout, all under ``cnn:ws:``:

===========================  ==============================================================
``cnn:ws:<id>:<kind>``        hash: entry name → bytes (kinds: models, runs, drawings, meta)
``cnn:ws:<id>:bytes``         the workspace's total entry size, kept by the put/delete scripts
``cnn:ws:touched``            sorted set: workspace id → last use (Redis' clock), for `expire`
===========================  ==============================================================

A put is one Lua script (check the size cap, replace the entry, count the bytes, touch), so an
entry is replaced atomically and two replicas cannot both squeeze past the cap. Ids and names
are validated with `workspace.check_id` / `check_name` before any key is built. Redis being
unreachable raises `redis_queue.ServiceUnavailable` (a UserError) instead of a traceback.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from cnn_core.service.redis_queue import UNAVAILABLE, ServiceUnavailable, _redis_errors, _text
from cnn_core.service.workspace import KINDS, WorkspaceFull, WorkspaceStore, check_id, check_name

if TYPE_CHECKING:
    import redis

PREFIX = "cnn:ws:"
TOUCHED = PREFIX + "touched"

# KEYS: kind hash, bytes counter, touched zset; ARGV: name, data, max bytes, workspace id.
# Returns -1 when the put fits (and was done), else the bytes in use.
_PUT = """
local old = redis.call('HSTRLEN', KEYS[1], ARGV[1])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local new = string.len(ARGV[2])
if used - old + new > tonumber(ARGV[3]) then return used end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCRBY', KEYS[2], new - old)
local now = redis.call('TIME')
redis.call('ZADD', KEYS[3], now[1] + now[2] / 1e6, ARGV[4])
return -1
"""
# KEYS: kind hash, bytes counter; ARGV: name.
_DELETE = """
local old = redis.call('HSTRLEN', KEYS[1], ARGV[1])
if old > 0 or redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('DECRBY', KEYS[2], old)
end
return old
"""
# KEYS: touched zset; ARGV: workspace id. Touch only a workspace that holds something.
_TOUCH = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  local now = redis.call('TIME')
  redis.call('ZADD', KEYS[1], now[1] + now[2] / 1e6, ARGV[1])
end
return 0
"""


def _available(method):
    """Turn a lost connection into the one-sentence ServiceUnavailable a page can show."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except _redis_errors():
            raise ServiceUnavailable(UNAVAILABLE) from None

    return wrapper


class RedisWorkspaceStore(WorkspaceStore):
    """The `WorkspaceStore` contract (see workspace.py) on Redis hashes; one instance per process is enough."""

    def __init__(self, connection: redis.Redis, max_bytes: int):
        self.redis = connection
        self.max_bytes = int(max_bytes)
        self._put = connection.register_script(_PUT)
        self._delete = connection.register_script(_DELETE)
        self._touch = connection.register_script(_TOUCH)

    @staticmethod
    def _key(workspace_id: str, kind: str) -> str:
        check_name(kind, "probe")
        return f"{PREFIX}{check_id(workspace_id)}:{kind}"

    @staticmethod
    def _bytes_key(workspace_id: str) -> str:
        return f"{PREFIX}{check_id(workspace_id)}:bytes"

    @_available
    def put(self, workspace_id: str, kind: str, name: str, data: bytes) -> None:
        name = check_name(kind, name)
        used = self._put(keys=[self._key(workspace_id, kind), self._bytes_key(workspace_id), TOUCHED],
                         args=[name, bytes(data), self.max_bytes, workspace_id])
        if int(used) >= 0:
            raise WorkspaceFull(
                f"Your workspace is full ({int(used) / 2**20:.1f} of {self.max_bytes / 2**20:.0f} MiB); "
                "delete a model you no longer need and try again."
            )

    @_available
    def get(self, workspace_id: str, kind: str, name: str) -> bytes | None:
        return self.redis.hget(self._key(workspace_id, kind), check_name(kind, name))

    @_available
    def names(self, workspace_id: str, kind: str) -> list[str]:
        return sorted(_text(name) for name in self.redis.hkeys(self._key(workspace_id, kind)))

    @_available
    def delete(self, workspace_id: str, kind: str, name: str) -> None:
        self._delete(keys=[self._key(workspace_id, kind), self._bytes_key(workspace_id)],
                     args=[check_name(kind, name)])

    @_available
    def clear(self, workspace_id: str) -> None:
        keys = [self._key(workspace_id, kind) for kind in KINDS]
        self.redis.delete(*keys, self._bytes_key(workspace_id))

    @_available
    def used_bytes(self, workspace_id: str) -> int:
        return int(self.redis.get(self._bytes_key(workspace_id)) or 0)

    @_available
    def touch(self, workspace_id: str) -> None:
        self._touch(keys=[TOUCHED], args=[check_id(workspace_id)])

    @_available
    def expire(self, idle_s: float) -> list[str]:
        seconds, micros = self.redis.time()
        cutoff = seconds + micros / 1e6 - idle_s
        gone = [_text(ws) for ws in self.redis.zrangebyscore(TOUCHED, "-inf", cutoff)]
        for workspace_id in gone:
            if not self.redis.zrem(TOUCHED, workspace_id):
                continue  # another replica expired it meanwhile
            self.clear(workspace_id)
        return gone
