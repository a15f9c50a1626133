"""Refresh is single-flight across processes: two gunicorn workers on PostgreSQL (issue 7).

The site runs under gunicorn with two (sync) worker processes against a PostgreSQL database this
test creates (``deploy_test_linking_site``), whatever database the rest of the suite uses: the
point is the row lock PostgreSQL gives across processes. A second gunicorn process plays GitHub
(the sandbox), answering each refresh slowly so that the concurrent requests really overlap the
one refresh in flight. Processes and the database are removed afterwards, pass or fail.
"""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest

from .deploy_support import (
    PG_SERVER,
    admin_sql,
    free_port,
    manage,
    production_env,
    start_gunicorn,
    stop,
    wait_ready,
)

DB_NAME = "deploy_test_linking_site"
REQUESTS = 20

#: Seeds one user whose GitHub token set holds tokens the sandbox really issued (the sandbox's
#: authorize and code exchange, stored with the vault's ``capture_tokens``), then expires it.
_SEED = """
from django.conf import settings
from social_django.models import UserSocialAuth
from accounts.models import IdentityDetails, User
from sandbox import oauth, state
from vault.models import TokenSet
from vault.testing import expire
from vault.tokens import capture_tokens

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
expire(token_set)
state.reset("github")
state.set_failure_mode("github", "slow")
print("USER", user.pk)
"""


@pytest.fixture
def deploy_database():
    admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', f'CREATE DATABASE "{DB_NAME}"')
    try:
        yield f"{PG_SERVER}/{DB_NAME}"
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


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

        barrier = threading.Barrier(REQUESTS)
        answers: list = []
        lock = threading.Lock()

        def call() -> None:
            barrier.wait(timeout=30)
            try:
                answer = _get(site_port, f"/deploy-test/token?user={user_id}")
            except Exception as error:
                answer = (0, {"error": repr(error)})
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=call) for _ in range(REQUESTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)

        assert len(answers) == REQUESTS
        assert [status for status, _ in answers] == [200] * REQUESTS, answers
        assert len({body["token_sha256"] for _, body in answers}) == 1  # everyone got the one new token
        assert len({body["pid"] for _, body in answers}) == 2  # both worker processes answered
        status, counts = _get(site_port, "/deploy-test/refresh-count")
        assert status == 200
        assert counts["github"] == 1, f"{counts['github']} refreshes reached the provider"
    finally:
        for process in processes:
            stop(process)
