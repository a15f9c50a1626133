"""Fixed-window rate limits for the agent API, kept in the cache (Redis in production).

A window per (bucket, id) counts requests; past the limit the caller is told how long to wait.
Buckets: ``key`` and ``user`` count every authenticated request; ``auth_failure`` counts refused
keys per client address, and once it is full further refused keys from that address are answered
429 instead of 401. A valid key is never refused for its address's failures: many agents share an
address (a NAT, a CI runner), and a stranger's bad keys must not lock out a working agent. Keys
carry 256 random bits, so the failure limit bounds noise and cost, not guessing.

On Redis the whole check for one request (both counters, their expiry) is one Lua script, so one
round trip and atomic across workers and hosts; a refused key costs one round trip of its own. A
token request answered from the stored token also stages the record of the hand-out in that same
script (``admit_and_stage``, ``vault.staged_records``): limits and record in one round trip. The
script goes over a connection this thread keeps to itself (``_Redis.run``): the client's pool,
retry and observability layers cost more Python per request than the round trip (bench/README.md).
With any other cache (local memory: one process is the whole site) ``cache.add`` + ``cache.incr``
count the same way.
A Redis that does not answer refuses the request (``LimitsUnavailable``) rather than not counting.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from . import errors

DEFAULT_LIMITS = {
    # bucket: (requests, window seconds)
    "key": (120, 60),
    "user": (300, 60),
    "auth_failure": (20, 300),
}

# KEYS: the key's counter, the user's counter.
# ARGV: the key window's and the user window's lifetime. Returns the two counts.
_ADMIT_SCRIPT = """
local by_key = redis.call('INCR', KEYS[1])
if by_key == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local by_user = redis.call('INCR', KEYS[2])
if by_user == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
return {by_key, by_user}
"""

# KEYS: the key's counter, the user's counter, the stream of staged records (activity.staging).
# ARGV: the two windows' lifetimes, the two limits, the record. Counts like _ADMIT_SCRIPT, and
# stages the record only when both counts are within their limits. Returns the two counts.
_ADMIT_AND_STAGE_SCRIPT = """
local by_key = redis.call('INCR', KEYS[1])
if by_key == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local by_user = redis.call('INCR', KEYS[2])
if by_user == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
if by_key <= tonumber(ARGV[3]) and by_user <= tonumber(ARGV[4]) then
  redis.call('XADD', KEYS[3], '*', 'r', ARGV[5])
end
return {by_key, by_user}
"""

# KEYS: one counter; ARGV: its window's lifetime. Returns the count.
_COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int


class _Window(NamedTuple):
    """One bucket's current window. A named tuple, not a frozen dataclass: two are made on every
    agent request, and a frozen dataclass's ``__init__`` cost four times as much."""

    cache_key: str
    limit: int
    lifetime: int
    retry_after: int


def _limit(bucket: str) -> tuple[int, int]:
    configured = getattr(settings, "VAULT_RATE_LIMITS", {}) or {}
    return tuple(configured.get(bucket, DEFAULT_LIMITS[bucket]))  # type: ignore[return-value]


def _window(bucket: str, ident: object, now: int) -> _Window:
    limit, seconds = _limit(bucket)
    start = now - now % seconds
    return _Window(
        cache_key=f"ratelimit:{bucket}:{ident}:{start}",
        limit=limit,
        # The key names its window, so outliving it by a second is harmless.
        lifetime=seconds + 1,
        retry_after=max(1, start + seconds - now),
    )


def admit(*, key_id: int | str, user_id: int, ip_address: str | None = None) -> None:
    """Count one authenticated request; raise ``RateLimited`` past the key's or the user's limit.

    The address's refused keys are not looked at (``ip_address`` is kept for callers): a valid
    key is admitted whatever strangers behind the same address sent.
    """
    now = int(time.time())
    by_key = _window("key", key_id, now)
    by_user = _window("user", user_id, now)
    redis = _redis()
    if redis is not None:
        try:
            key_count, user_count = redis.run(
                redis.admit, [redis.key(by_key), redis.key(by_user), by_key.lifetime, by_user.lifetime]
            )
        except _redis_errors() as error:
            raise errors.LimitsUnavailable() from error
    else:
        key_count = _count(by_key)
        user_count = _count(by_user)
    _refuse_past_limits(by_key, key_count, by_user, user_count)


def admit_and_stage(*, key_id: int | str, user_id: int, stream: str, record: str) -> bool:
    """``admit``, and in the same Redis round trip, when the request is admitted, ``record`` added
    to the stream named ``stream`` (``vault.staged_records``): nothing staged for a refused request.

    False, with nothing counted, when the cache is not Redis: the caller counts with ``admit`` and
    records the usual way.
    """
    redis = _redis()
    if redis is None:
        return False
    now = int(time.time())
    by_key = _window("key", key_id, now)
    by_user = _window("user", user_id, now)
    try:
        key_count, user_count = redis.run(
            redis.admit_and_stage,
            [
                redis.key(by_key),
                redis.key(by_user),
                redis.stream_key(stream),
                by_key.lifetime,
                by_user.lifetime,
                by_key.limit,
                by_user.limit,
                record,
            ],
        )
    except _redis_errors() as error:
        raise errors.LimitsUnavailable() from error
    _refuse_past_limits(by_key, key_count, by_user, user_count)
    return True


def _refuse_past_limits(by_key: _Window, key_count: int, by_user: _Window, user_count: int) -> None:
    for bucket, window, count in (("key", by_key, key_count), ("user", by_user, user_count)):
        if count > window.limit:
            raise errors.RateLimited(f"Rate limit for this {bucket} reached.", retry_after=window.retry_after)


def note_failure(*, ip_address: str | None) -> Verdict:
    """Count one refused key from ``ip_address``; not allowed once the address is over its limit."""
    window = _window("auth_failure", ip_address, int(time.time()))
    redis = _redis()
    if redis is not None:
        try:
            count = redis.run(redis.count, [redis.key(window), window.lifetime])
        except _redis_errors() as error:
            raise errors.LimitsUnavailable() from error
    else:
        count = _count(window)
    return Verdict(allowed=count <= window.limit, retry_after=window.retry_after)


def _count(window: _Window) -> int:
    if cache.add(window.cache_key, 1, timeout=window.lifetime):
        return 1
    try:
        return cache.incr(window.cache_key)
    except ValueError:  # expired between add and incr
        cache.add(window.cache_key, 1, timeout=window.lifetime)
        return 1


# On Redis: the scripts, registered once per per-thread backend (see the module docstring).


@dataclass
class _Redis:
    backend: Any
    client: Any
    admit: Any
    admit_and_stage: Any
    count: Any
    no_script: type[Exception]
    dropped: tuple[type[Exception], ...]
    connection: Any = None
    pid: int = 0

    def __post_init__(self) -> None:
        # How many of a script's arguments are keys, by script.
        self.key_counts = {self.admit.sha: 2, self.admit_and_stage.sha: 3, self.count.sha: 1}
        self.stream_keys: dict[str, str] = {}

    def stream_key(self, name: str) -> str:
        """The cache's key for a stream's name (its prefix and version added), made once."""
        made = self.stream_keys.get(name)
        if made is None:
            made = self.stream_keys[name] = self.backend.make_key(name)
        return made

    def key(self, window: _Window) -> str:
        # make_key, not make_and_validate_key: these keys are short ASCII, and the check that
        # they would suit memcached costs more than the rest of the key's handling.
        return self.backend.make_key(window.cache_key)

    def run(self, script: Any, keys_then_args: list) -> Any:
        """``EVALSHA`` over this thread's own connection (taken from the client's pool once, never
        shared): one send, one read. A dropped connection is opened again and the script sent once
        more; a server that lost its scripts (a restart) gets the script itself."""
        count = self.key_counts[script.sha]
        for attempt in (1, 2):
            connection = self._connection()
            try:
                try:
                    connection.send_command("EVALSHA", script.sha, count, *keys_then_args)
                    return connection.read_response()
                except self.no_script:
                    connection.send_command("EVAL", script.script, count, *keys_then_args)
                    return connection.read_response()
            except self.dropped:
                connection.disconnect()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _connection(self) -> Any:
        # A connection made before a fork belongs to the parent: a child takes its own.
        if self.connection is None or self.pid != os.getpid():
            self.connection = self.client.connection_pool.make_connection()
            self.pid = os.getpid()
        return self.connection


def _redis() -> _Redis | None:
    """The registered scripts when the cache is Redis, else None.

    ``cache`` is a proxy to a per-thread backend; the Redis client and its scripts are kept on
    that backend, since building a client costs as much as a round trip.
    """
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    found = getattr(backend, "_vault_rate_limits", None)
    if found is None:
        client = backend._cache.get_client(write=True)
        found = _Redis(
            backend=backend,
            client=client,
            admit=client.register_script(_ADMIT_SCRIPT),
            admit_and_stage=client.register_script(_ADMIT_AND_STAGE_SCRIPT),
            count=client.register_script(_COUNT_SCRIPT),
            **_script_errors(),
        )
        backend._vault_rate_limits = found
    return found


def _redis_errors() -> tuple[type[Exception], ...]:
    from redis.exceptions import RedisError

    return (RedisError, OSError)


def _script_errors() -> dict[str, Any]:
    """What ``_Redis.run`` tells apart: a server without the script, and a dropped connection."""
    from redis.exceptions import ConnectionError, NoScriptError, TimeoutError

    return {"no_script": NoScriptError, "dropped": (ConnectionError, TimeoutError, OSError)}
