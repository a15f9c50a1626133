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


def is_blocked(bucket: str, ident: object) -> Verdict:
    """Whether the bucket is already over its limit, without counting (failed-key attempts)."""
    limit, window = _limit(bucket)
    now = int(time.time())
    window_start = now - now % window
    count = cache.get(f"ratelimit:{bucket}:{ident}:{window_start}", 0)
    return Verdict(allowed=count < limit, retry_after=max(1, window_start + window - now))
