"""Production shape (issue 7): ``check --deploy`` is clean, sessions and the cache live in Redis and are
shared between processes, and whitenoise serves collected static files with far-future cache headers.

Each check runs the real settings module in a child process with a deployment's environment.
"""

from __future__ import annotations

import json
import uuid

import environ
import pytest
import redis
from django.contrib.sessions.models import Session
from django.core.cache import cache

from accounts.models import User

from .deploy_support import PYTHON, REDIS_SERVER, collected_static, get_with, manage, production_env, run
from .flows import sign_in

#: A Redis database of its own, so the test never touches what a developer keeps in db 0.
REDIS_DB = 14
REDIS_URL = f"{REDIS_SERVER}/{REDIS_DB}"


def test_check_deploy_is_clean_with_a_production_environment():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    # One check is silenced in settings, with its reason: the toolkit's W008 (http redirect URIs),
    # which RFC 8252 loopback redirects need; registration refuses every other http redirect.
    assert "System check identified no issues (1 silenced)." in result.stdout


def test_check_deploy_fails_when_a_production_setting_is_weakened():
    # The same command notices a weakened setting, so the clean run above means something.
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", env=production_env(SECURE_SSL_REDIRECT="off")
    )
    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr


_READ_SETTINGS = """
import json, django
django.setup()
from django.conf import settings
cache = settings.CACHES["default"]
shown = {"cache": cache["BACKEND"], "location": cache["LOCATION"], "sessions": settings.SESSION_ENGINE}
print(json.dumps(shown))
"""

_READ_SESSION = """
import json, sys, django
django.setup()
from django.contrib.sessions.backends.cached_db import SessionStore
from django.core.cache import cache
session = SessionStore(session_key=sys.argv[1])
print(json.dumps({"user": session.get("_auth_user_id"), "marker": cache.get(sys.argv[2])}))
"""


@pytest.mark.django_db
def test_sessions_and_cache_are_in_redis_and_shared_between_processes(client, settings, tmp_path):
    env = production_env(
        DJANGO_SETTINGS_MODULE="linking_site.settings",
        CACHE_URL=REDIS_URL,
        # The other process has no database at all: whatever it reads must come from Redis.
        DATABASE_URL=f"sqlite:///{tmp_path / 'no-such-dir' / 'none.sqlite3'}",
    )
    shown = run([PYTHON, "-c", _READ_SETTINGS], env)
    assert shown.returncode == 0, shown.stderr
    configured = json.loads(shown.stdout)
    assert configured["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert configured["location"] == REDIS_URL
    assert configured["sessions"] == "django.contrib.sessions.backends.cached_db"

    # This process gets exactly what the settings make of CACHE_URL.
    settings.CACHES = {"default": environ.Env.cache_url_config(REDIS_URL)}
    assert settings.CACHES["default"]["BACKEND"] == configured["cache"]
    redis_client = redis.Redis.from_url(REDIS_URL)
    marker = f"deploy-test:{uuid.uuid4().hex}"
    session_key = ""
    try:
        sign_in(client, "github", email="redis-session@example.com")  # a request writes the session
        session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
        cache.set(marker, "set by the test process", 60)
        assert redis_client.exists(f":1:django.contrib.sessions.cached_db{session_key}")
        assert redis_client.exists(f":1:{marker}")
        Session.objects.filter(session_key=session_key).delete()  # from here on only Redis has it

        other = run([PYTHON, "-c", _READ_SESSION, session_key, marker], env)
        assert other.returncode == 0, other.stderr
        assert json.loads(other.stdout) == {
            "user": str(User.objects.get(email="redis-session@example.com").pk),
            "marker": "set by the test process",
        }
    finally:
        redis_client.delete(f":1:{marker}", f":1:django.contrib.sessions.cached_db{session_key}")


def test_whitenoise_serves_collected_static_files_with_far_future_cache_headers(tmp_path):
    env, manifest = collected_static(tmp_path)
    hashed = manifest["css/site.css"]
    assert hashed != "css/site.css" and (tmp_path / "static" / hashed).is_file()

    answers = get_with(env, f"/static/{hashed}", "/static/css/site.css", accept_encoding="gzip")
    versioned = answers[f"/static/{hashed}"]
    assert versioned["status"] == 200 and versioned["bytes"] > 0
    directives = {part.strip() for part in versioned["cache_control"].split(",")}
    assert "immutable" in directives and "public" in directives
    max_age = next(int(part.split("=")[1]) for part in directives if part.startswith("max-age="))
    assert max_age >= 365 * 24 * 3600
    assert versioned["encoding"] == "gzip"  # the compressed copy collectstatic wrote
    # The unversioned name still works but is not cached for long (it may change on a deploy).
    plain = answers["/static/css/site.css"]
    assert plain["status"] == 200 and "immutable" not in plain["cache_control"]
