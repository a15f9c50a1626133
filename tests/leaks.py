"""Where a leaked secret could hide from a plain text search: sessions and the cache.

Session data is stored encoded (base64 of signed JSON), and the local-memory cache keeps pickles, so
a token put in either would not show in a dump of the database or of the cache's bytes. This
decodes both, for the canary tests to search, and stores the canaries they search for.
"""

from __future__ import annotations

import pickle

from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.cache import caches

from vault.capture import capture_tokens


def decoded_sessions() -> list[dict]:
    return [SessionStore().decode(row.session_data) for row in Session.objects.all()]


def cache_contents() -> dict[str, object]:
    """Every entry of the default cache (the tests' local-memory cache), unpickled."""
    store = caches["default"]._cache
    return {key: pickle.loads(value) for key, value in list(store.items())}


def store_canaries(identity, *, access: str, refresh: str) -> None:
    """``identity``'s tokens replaced by canaries, captured as GitHub's token answer carries them:
    each suite searches for canaries of its own, so a leak names the suite that made it."""
    capture_tokens(
        identity=identity,
        response={
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": 3600,
            "scope": "read:user",
            "token_type": "bearer",
        },
    )
