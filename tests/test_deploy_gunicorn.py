"""Two gunicorn workers on PostgreSQL (issue 7): refresh is single-flight across processes, and
the token API's rate limits (in Redis) hold across processes, with every token handed out on record.

The site runs under gunicorn with two (sync) worker processes against a PostgreSQL database this
test creates (``deploy_test_linking_site_<pid>``), whatever database the rest of the suite uses: the
point is the row lock PostgreSQL gives across processes. A second gunicorn process plays GitHub
(the sandbox), answering each refresh slowly so that the concurrent requests really overlap the
one refresh in flight. Processes and the database are removed afterwards, pass or fail.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable

import pytest
import redis

from .deploy_support import (
    PG_SERVER,
    REDIS_SERVER,
    admin_sql,
    free_port,
    manage,
    production_env,
    start_gunicorn,
    stop,
    wait_ready,
)
from .vault_support import run_in_threads

#: One database per test process, so that parallel runs (pytest -n) never drop each other's.
DB_NAME = f"deploy_test_linking_site_{os.getpid()}"
REQUESTS = 20

#: Seeds one user whose GitHub token set holds tokens the sandbox really issued (the sandbox's
#: authorize and code exchange, stored with the vault's ``capture_tokens``): ``user``, ``token_set``.
_SANDBOX_GITHUB_USER = """
from django.conf import settings
from social_django.models import UserSocialAuth
from accounts.models import IdentityDetails, User
from sandbox import oauth, state
from tests.vault_support import expire
from vault.capture import capture_tokens

email = "two-workers@example.com"
consent = oauth.Consent(provider="github", client_id=settings.SOCIAL_AUTH_GITHUB_KEY,
    redirect_uri=settings.SITE_URL + "/complete/github/", email=email, name="Two Workers",
    email_verified=True, scopes=["read:user", "user:email"])
issued = oauth.exchange_code("github", client_id=settings.SOCIAL_AUTH_GITHUB_KEY,
    code=oauth.authorize(consent).code, redirect_uri=consent.redirect_uri, code_verifier=None)
user = User.objects.create(username="two-workers", email=email)
identity = UserSocialAuth.objects.create(user=user, provider="github", uid=issued.grant.subject)
IdentityDetails.objects.create(identity=identity, email=email, email_verified=True, is_default=True)
token_set = capture_tokens(identity=identity, response={"access_token": issued.access_token,
    "refresh_token": issued.refresh_token, "expires_in": issued.expires_in, "token_type": "bearer"},
    requested_scopes=["read:user", "user:email"])
"""

#: ... then expires it, and makes the sandbox answer each refresh slowly.
_SEED = (
    _SANDBOX_GITHUB_USER
    + """
expire(token_set)
state.reset("github")
state.set_failure_mode("github", "slow")
print("USER", user.pk)
"""
)


@pytest.fixture
def deploy_database():
    admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', f'CREATE DATABASE "{DB_NAME}"')
    try:
        yield f"{PG_SERVER}/{DB_NAME}"
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def _all_at_once(count: int, call: Callable[[], tuple]) -> list[tuple]:
    """``call()`` from ``count`` threads released together; a failed call fails the test."""
    answers, failures = run_in_threads(count, call)
    assert not failures, failures
    return answers


def _get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_concurrent_requests_on_two_gunicorn_workers_refresh_an_expired_token_once(deploy_database, tmp_path):
    provider_port, site_port = free_port(), free_port()
    env = production_env(
        DJANGO_SETTINGS_MODULE="tests.deploy_settings",
        DATABASE_URL=deploy_database,
        CACHE_URL="locmemcache://",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="off",
        SANDBOX_PROVIDERS="on",
        LINKING_SITE_FORCE_SANDBOX="1",
        SANDBOX_BASE_URL=f"http://127.0.0.1:{provider_port}",
        SITE_URL=f"http://127.0.0.1:{site_port}",
        DEPLOY_TEST_SLOW_SECONDS="0.5",
    )
    migrated = manage("migrate", "--noinput", "-v", "0", env=env)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    seeded = manage("shell", "-c", _SEED, env=env)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    user_id = int(seeded.stdout.split("USER", 1)[1].split()[0])

    processes = []
    try:
        provider_log, site_log = tmp_path / "provider.log", tmp_path / "site.log"
        provider = start_gunicorn(port=provider_port, env=env, workers=1, threads=4, log=provider_log)
        processes.append(provider)
        site = start_gunicorn(port=site_port, env=env, workers=2, log=site_log)
        processes.append(site)
        wait_ready(provider_port, provider, provider_log)
        wait_ready(site_port, site, site_log)

        answers = _all_at_once(REQUESTS, lambda: _get(site_port, f"/deploy-test/token?user={user_id}"))
        assert len(answers) == REQUESTS
        assert [answer[0] for answer in answers] == [200] * REQUESTS, answers
        assert len({answer[1]["token_sha256"] for answer in answers}) == 1  # everyone got the one new token
        assert len({answer[1]["pid"] for answer in answers}) == 2  # both worker processes answered
        status, counts = _get(site_port, "/deploy-test/refresh-count")
        assert status == 200
        assert counts["github"] == 1, f"{counts['github']} refreshes reached the provider"
    finally:
        for process in processes:
            stop(process)


#: ... or leaves it fresh and gives its user an agent key.
_SEED_AGENT = (
    _SANDBOX_GITHUB_USER
    + """
from vault.agents import create_agent_key
print("KEY", create_agent_key(user=user, name="deploy bot", providers=["github"])[1])
"""
)

_COUNT_ISSUED = """
from activity.models import Activity
print("ISSUED", Activity.objects.filter(kind="token_issued").count())
"""

KEY_LIMIT = 6
TOKEN_REQUESTS = 16


def _post_token(port: int, key: str) -> tuple[int, dict, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/token",
        data=json.dumps({"connection": "github"}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), response.headers.get("Retry-After", "")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), error.headers.get("Retry-After", "")


def test_token_api_on_two_workers_shares_its_limits_through_redis_and_records_every_token(
    deploy_database, tmp_path
):
    redis_db = 13  # a Redis database of its own, flushed before and after
    client = redis.Redis.from_url(f"{REDIS_SERVER}/{redis_db}")
    client.flushdb()
    site_port = free_port()
    env = production_env(
        DJANGO_SETTINGS_MODULE="tests.deploy_settings",
        DATABASE_URL=deploy_database,
        CACHE_URL=f"{REDIS_SERVER}/{redis_db}",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="off",
        SANDBOX_PROVIDERS="on",
        LINKING_SITE_FORCE_SANDBOX="1",
        SANDBOX_BASE_URL=f"http://127.0.0.1:{free_port()}",  # the tokens are fresh: no refresh call
        SITE_URL=f"http://127.0.0.1:{site_port}",
        DEPLOY_TEST_KEY_LIMIT=str(KEY_LIMIT),
    )
    migrated = manage("migrate", "--noinput", "-v", "0", env=env)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    seeded = manage("shell", "-c", _SEED_AGENT, env=env)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    key = seeded.stdout.split("KEY", 1)[1].split()[0]

    site_log = tmp_path / "site.log"
    site = start_gunicorn(port=site_port, env=env, workers=2, log=site_log)
    try:
        wait_ready(site_port, site, site_log)
        answers = _all_at_once(TOKEN_REQUESTS, lambda: _post_token(site_port, key))
        # Each sync worker serves one request at a time over one pooled Redis connection, so two
        # site connections on this Redis database mean both processes counted requests.
        me = client.client_id()
        site_connections = [
            c for c in client.client_list() if c["db"] == str(redis_db) and c["id"] != str(me)
        ]
        assert len(site_connections) >= 2, site_connections
    finally:
        stop(site)
        client.flushdb()

    statuses = sorted(status for status, _body, _ in answers)
    # Both workers count in the same Redis window: exactly the limit got a token, whichever
    # process answered (the window is a minute; the test runs in a second or two).
    assert statuses == [200] * KEY_LIMIT + [429] * (TOKEN_REQUESTS - KEY_LIMIT), answers
    tokens = {body["access_token"] for status, body, _ in answers if status == 200}
    assert len(tokens) == 1
    assert all(
        body["error"] == "rate_limited" and int(retry) >= 1
        for status, body, retry in answers
        if status == 429
    )
    counted = manage("shell", "-c", _COUNT_ISSUED, env=env)
    assert counted.returncode == 0, counted.stdout + counted.stderr
    assert f"ISSUED {KEY_LIMIT}" in counted.stdout  # every token handed out is on record, no more
    assert next(iter(tokens)) not in site_log.read_text()
