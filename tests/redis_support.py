"""Redis as a test's cache, the way production runs it, without touching anyone else's keys.

Tests run side by side (``pytest -n``) against one Redis server, and some suites flush a database
of their own (tests/test_deploy_gunicorn.py, db 13): so the cache here lives in a database no suite
flushes, under a key prefix of the test's own, and only the test's own keys are removed afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from .deploy_support import REDIS_SERVER

#: No suite flushes this database; every test here keeps to its own key prefix.
REDIS_URL = f"{REDIS_SERVER}/11"


@contextmanager
def redis_as_cache(settings, *, label: str) -> Iterator[redis.Redis]:
    """``settings.CACHES`` pointed at Redis under a fresh ``label-…`` key prefix; yields a client
    of that server for looking inside, and deletes the prefix's keys on the way out."""
    prefix = f"{label}-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    server = redis.Redis.from_url(REDIS_URL)
    try:
        yield server
    finally:
        for name in server.scan_iter(match=f"{prefix}:*"):
            server.delete(name)
        server.close()
