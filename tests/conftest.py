"""Shared fixtures: provider-to-site calls reach the sandbox in-process; a clean cache per test;
the rate limits on both caches (``limit_cache``)."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from .redis_support import redis_as_cache
from .sandbox_support import install_testserver_transport


@pytest.fixture(autouse=True)
def _sandbox_transport(monkeypatch):
    install_testserver_transport(monkeypatch)


@pytest.fixture(autouse=True)
def _site_url_is_the_live_server(request):
    """Browser tests: SITE_URL (where redirect_uri and every absolute link point) is the live server."""
    if "live_server" not in request.fixturenames:
        yield
        return
    settings = request.getfixturevalue("settings")
    settings.SITE_URL = request.getfixturevalue("live_server").url
    yield


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def settings_rate_limits_off(settings):
    """Fuzzers send hundreds of requests a second; the limits are tested on their own."""
    settings.VAULT_RATE_LIMITS = {"key": (100000, 60), "user": (100000, 60), "auth_failure": (100000, 300)}


@pytest.fixture(params=["locmem", "redis"])
def limit_cache(request, settings):
    """Each limit test twice: on the local-memory cache (one process is the whole site) and on
    Redis, where production counts them across processes and hosts (tests/redis_support.py)."""
    if request.param == "locmem":
        yield request.param
        return
    with redis_as_cache(settings, label="limits"):
        yield request.param


@pytest.fixture
def staff(client):
    """A superuser signed in (on ``client``) with GitHub and with Google linked."""
    from accounts.models import User

    from .flows import round_trip, sign_in

    sign_in(client, "github", email="alice@example.com")
    round_trip(client, "google-oauth2", email="alice@example.com")
    User.objects.update(is_staff=True, is_superuser=True)
    return User.objects.get()
