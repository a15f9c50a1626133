"""Fixed-window rate limits kept in the cache (local memory by default, Redis in production).

A window per (bucket, id) counts requests; past the limit the caller is told how long to wait.
Counting uses ``cache.add`` + ``cache.incr``, which are atomic on Redis and per process in local
memory (where one process is the whole site).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

DEFAULT_LIMITS = {
    # bucket: (requests, window seconds)
    "key": (120, 60),
    "user": (300, 60),
    "auth_failure": (20, 300),
}


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int


def _limit(bucket: str) -> tuple[int, int]:
    configured = getattr(settings, "VAULT_RATE_LIMITS", {}) or {}
    return tuple(configured.get(bucket, DEFAULT_LIMITS[bucket]))  # type: ignore[return-value]


def hit(bucket: str, ident: object) -> Verdict:
    """Count one request; refuse past the bucket's limit within its window."""
    limit, window = _limit(bucket)
    now = int(time.time())
    window_start = now - now % window
    key = f"ratelimit:{bucket}:{ident}:{window_start}"
    if cache.add(key, 1, timeout=window + 1):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=window + 1)
            count = 1
    return Verdict(allowed=count <= limit, retry_after=max(1, window_start + window - now))


def hit_many(hits: list[tuple[str, object]]) -> list[Verdict]:
    """Count several buckets at once: one round trip on Redis (the token API's hot path)."""
    client = _redis_client()
    if client is None:
        return [hit(bucket, ident) for bucket, ident in hits]
    now = int(time.time())
    pipe = client.pipeline(transaction=False)
    plans = []
    for bucket, ident in hits:
        limit, window = _limit(bucket)
        window_start = now - now % window
        key = cache.make_and_validate_key(f"ratelimit:{bucket}:{ident}:{window_start}")
        pipe.incr(key)
        pipe.expire(key, window + 1)  # the key names its window, so a longer life is harmless
        plans.append((limit, window_start + window - now))
    results = pipe.execute()
    return [
        Verdict(allowed=results[2 * i] <= limit, retry_after=max(1, left))
        for i, (limit, left) in enumerate(plans)
    ]


def _redis_client():
    """The raw Redis client behind Django's Redis cache, or None for any other cache."""
    backend = getattr(cache, "_cache", None)
    if type(cache).__name__ != "RedisCache" or backend is None:
        return None
    return backend.get_client(write=True)


def is_blocked(bucket: str, ident: object) -> Verdict:
    """Whether the bucket is already over its limit, without counting (failed-key attempts)."""
    limit, window = _limit(bucket)
    now = int(time.time())
    window_start = now - now % window
    count = cache.get(f"ratelimit:{bucket}:{ident}:{window_start}", 0)
    return Verdict(allowed=count < limit, retry_after=max(1, window_start + window - now))
