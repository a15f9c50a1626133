"""Issue 20.5, 20.6 and the JWKS note: what discovery and the provider settings may and may not do.

* 20.5: discovery that puts an endpoint on a host other than the issuer's is refused (no code,
  secret or token goes there) until staff allow that host for the provider; ``manage.py check``
  names the endpoint and the host.
* 20.6: two providers with the same issuer and client id are a ``check`` error (and stop the start).
* An ID token naming an unpublished ``kid`` costs at most one JWKS re-fetch per provider per
  minute, counted in the shared cache (so it holds across processes), not one per attempt.

Settings change between sign-ins in the same test, as an operator changes them between restarts.
"""

from __future__ import annotations

import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from social_django.models import UserSocialAuth

from accounts.oidc import backend as oidc_backend
from accounts.oidc import checks as oidc_checks
from accounts.oidc import config as oidc_config
from accounts.oidc import id_tokens as oidc_id_tokens

from . import sec_oidc_helpers
from .oidc_fixtures import SigningKey, _rsa_key
from .sec_oidc_helpers import point_named_at, point_oidc_at, refused_on_page, round_trip

pytestmark = pytest.mark.django_db

fake_ops = sec_oidc_helpers.fake_ops
refusals = sec_oidc_helpers.refusals

ISSUER = "https://op.example.test"
ELSEWHERE = "https://tokens.elsewhere.test"


@pytest.fixture
def op(settings, fake_ops):
    provider = fake_ops.add(ISSUER)
    point_oidc_at(settings, provider)
    return provider


def elsewhere_calls(op) -> list[str]:
    return [url for _method, url in op.calls if url.startswith(ELSEWHERE)]


# --- 20.5: endpoints on other hosts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/me"),
        ("jwks_uri", "/jwks"),
        ("revocation_endpoint", "/token/revocation"),
        ("authorization_endpoint", "/auth"),
    ],
)
def test_an_endpoint_on_another_host_is_refused_until_staff_allow_it(
    client,
    settings,
    fake_ops,
    op,
    refusals,
    endpoint,
    path,
):
    # The other host answers like the provider (so once allowed, the sign-in goes through).
    fake_ops.adapters[ELSEWHERE] = fake_ops.adapters[ISSUER]
    op.discovery_changes = {endpoint: ELSEWHERE + path}

    with pytest.raises(SystemCheckError) as failed:
        call_command("check", tags=["oidc"])
    assert "oidc.E011" in str(failed.value)
    assert f"{endpoint} on host 'tokens.elsewhere.test'" in str(failed.value)
    assert "SOCIAL_AUTH_OIDC_ENDPOINT_HOSTS=tokens.elsewhere.test" in str(failed.value)
    with pytest.raises(ImproperlyConfigured, match=endpoint):
        oidc_checks.validate_at_startup()

    # A person presses "Continue with Example IdP": refused before the provider is even visited.
    response = client.post("/login/oidc/")
    refused_on_page(client, response, code="invalid_setting")
    assert elsewhere_calls(op) == [] and op.count("/token") == 0
    assert not UserSocialAuth.objects.exists()

    # Staff confirm the host is the provider's (a restart with the new setting): it works.
    settings.SOCIAL_AUTH_OIDC_ENDPOINT_HOSTS = ["tokens.elsewhere.test"]
    oidc_backend.clear_caches()
    call_command("check", tags=["oidc"])
    oidc_checks.validate_at_startup()
    if endpoint == "authorization_endpoint":
        response = client.post("/login/oidc/")
        assert response.headers["Location"].startswith(ELSEWHERE + "/auth?")
    elif endpoint != "revocation_endpoint":
        assert round_trip(client, op).headers["Location"] == "/settings/connections/"
        assert elsewhere_calls(op)


def test_named_provider_allows_hosts_with_its_own_variable(client, settings, fake_ops):
    op = fake_ops.add(ISSUER)
    fake_ops.adapters[ELSEWHERE] = fake_ops.adapters[ISSUER]
    op.discovery_changes = {"token_endpoint": ELSEWHERE + "/token"}
    point_named_at(settings, "corp", op)
    with pytest.raises(SystemCheckError, match=r"OIDC_CORP_ENDPOINT_HOSTS=tokens\.elsewhere\.test"):
        call_command("check", tags=["oidc"])

    point_named_at(settings, "corp", op, ENDPOINT_HOSTS="Tokens.Elsewhere.test, login.other.test:8443")
    assert settings.SOCIAL_AUTH_CORP_ENDPOINT_HOSTS == ["tokens.elsewhere.test", "login.other.test:8443"]
    call_command("check", tags=["oidc"])
    assert round_trip(client, op, "corp").headers["Location"] == "/settings/connections/"


def test_a_different_port_on_the_issuers_host_is_another_host(settings, op):
    op.discovery_changes = {"token_endpoint": "https://op.example.test:8443/token"}
    with pytest.raises(SystemCheckError, match=r"token_endpoint on host 'op\.example\.test:8443'"):
        call_command("check", tags=["oidc"])
    op.discovery_changes = {"token_endpoint": "https://OP.example.test:443/token"}  # the same host
    call_command("check", tags=["oidc"])


@pytest.mark.parametrize("value", ["https://tokens.elsewhere.test", "tokens.elsewhere.test/path", "a b/c"])
def test_a_malformed_allowed_host_stops_the_start(value):
    with pytest.raises(ImproperlyConfigured, match="OIDC_CORP_ENDPOINT_HOSTS"):
        oidc_config.named_provider_settings(
            {
                "OIDC_PROVIDERS": "corp",
                "OIDC_CORP_ENDPOINT": ISSUER,
                "OIDC_CORP_KEY": "k",
                "OIDC_CORP_SECRET": "s",
                "OIDC_CORP_ENDPOINT_HOSTS": value,
            }
        )


# --- 20.6: one client configured twice ----------------------------------------------------------------


def test_two_providers_with_the_same_issuer_and_client_id_are_a_check_error(settings, op):
    call_command("check", tags=["oidc"])
    # The operator adds "corp" for the same issuer and, by mistake, the same client registration.
    point_named_at(settings, "corp", op)
    with pytest.raises(SystemCheckError) as failed:
        call_command("check", tags=["oidc"])
    text = str(failed.value)
    assert "oidc.E010" in text and "'corp'" in text and "provider 'oidc'" in text and ISSUER in text
    assert op.client_secret not in text
    with pytest.raises(ImproperlyConfigured, match=r"oidc\.E010"):
        oidc_checks.validate_at_startup()
    # A trailing slash does not make it another issuer.
    settings.SOCIAL_AUTH_CORP_OIDC_ENDPOINT = ISSUER + "/"
    with pytest.raises(SystemCheckError, match=r"oidc\.E010"):
        call_command("check", tags=["oidc"])
    # Its own client registration at the same issuer is fine.
    settings.SOCIAL_AUTH_CORP_OIDC_ENDPOINT = ISSUER
    settings.SOCIAL_AUTH_CORP_KEY = "another-client"
    call_command("check", tags=["oidc"])


# --- JWKS re-fetches for unknown kids --------------------------------------------------------------------


def test_unknown_kid_costs_one_jwks_refetch_per_window_not_one_per_attempt(client, op, monkeypatch):
    stranger = SigningKey("not-published", _rsa_key(2))
    op.id_token = lambda provider, claims: provider.sign(claims, key=stranger)
    for _ in range(5):
        response = round_trip(client, op)
        assert response.headers["Location"] == "/"
    assert op.count("/jwks") == 2  # the first fetch, and one re-fetch for the unknown kid

    # Another process (its in-memory JWKS cache empty, the shared cache the same): its first fetch,
    # and no re-fetch inside the window.
    oidc_backend.clear_caches()
    for _ in range(3):
        round_trip(client, op)
    assert op.count("/jwks") == 3
    assert not UserSocialAuth.objects.exists()

    # After the window one more re-fetch is allowed; and a real rotation is still picked up.
    monkeypatch.setattr(oidc_id_tokens, "JWKS_REFETCH_SECONDS", 1)
    from django.core.cache import cache

    cache.clear()
    round_trip(client, op)
    assert op.count("/jwks") == 4
    time.sleep(1.1)
    op.keys.insert(0, stranger)  # the provider publishes the key after all
    assert round_trip(client, op).headers["Location"] == "/settings/connections/"
    assert op.count("/jwks") == 5


def test_a_rotation_another_process_saw_is_used_without_a_fetch(client, op):
    from social_django.utils import load_backend, load_strategy

    assert round_trip(client, op).headers["Location"] == "/settings/connections/"
    client.post("/logout/")
    old_key, new_key = op.keys[0], SigningKey("key-2", _rsa_key(1))
    op.keys.insert(0, new_key)
    # "Process A" meets the new kid and re-fetches: the shared cache now holds the new keys.
    assert round_trip(client, op).headers["Location"] == "/settings/connections/"
    assert op.count("/jwks") == 2
    client.post("/logout/")

    # "Process B" loaded the JWKS before the rotation (its memory has only the old key) ...
    oidc_backend.clear_caches()
    op.keys = [old_key]
    backend = load_backend(load_strategy(), "oidc", redirect_uri=None)
    backend.get_jwks_keys_for_uri(backend.jwks_uri())
    op.keys = [new_key, old_key]
    fetched = op.count("/jwks")
    # ... and, inside A's re-fetch window, takes the new key from the shared cache: no fetch.
    assert round_trip(client, op).headers["Location"] == "/settings/connections/"
    assert op.count("/jwks") == fetched


def test_revocation_endpoint_moved_to_another_host_never_receives_the_tokens(
    client, settings, fake_ops, op, django_capture_on_commit_callbacks
):
    from . import flows

    fake_ops.adapters[ELSEWHERE] = fake_ops.adapters[ISSUER]
    assert round_trip(client, op).headers["Location"] == "/settings/connections/"
    flows.sign_in(client, "github", email="alice@example.com")  # so the OIDC account can go
    identity = UserSocialAuth.objects.get(provider="oidc")
    # Discovery now names a revocation endpoint elsewhere (seen after the next restart).
    op.discovery_changes = {"revocation_endpoint": ELSEWHERE + "/token/revocation"}
    oidc_backend.clear_caches()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/settings/connections/{identity.pk}/disconnect/")
    assert response.headers["Location"] == "/settings/connections/"
    assert not UserSocialAuth.objects.filter(pk=identity.pk).exists()
    assert elsewhere_calls(op) == [] and op.count("/token/revocation") == 0


def test_an_older_shared_key_set_does_not_block_a_later_rotation(client, op, monkeypatch):
    from social_django.utils import load_backend, load_strategy

    monkeypatch.setattr(oidc_id_tokens, "JWKS_REFETCH_SECONDS", 1)
    key_1, key_2, key_3 = op.keys[0], SigningKey("key-2", _rsa_key(1)), SigningKey("key-3", _rsa_key(2))
    assert round_trip(client, op).headers["Location"] == "/settings/connections/"
    client.post("/logout/")
    op.keys = [key_2, key_1]
    assert round_trip(client, op).headers["Location"] == "/settings/connections/"  # shared: 2, 1
    client.post("/logout/")
    time.sleep(1.1)  # the re-fetch window has passed

    # A process that still has only key 1 in memory meets key 3: the shared set (keys 2 and 1)
    # does not have it either, so it re-fetches instead of refusing until its memory expires.
    oidc_backend.clear_caches()
    op.keys = [key_1]
    backend = load_backend(load_strategy(), "oidc", redirect_uri=None)
    backend.get_jwks_keys_for_uri(backend.jwks_uri())
    op.keys = [key_3, key_2, key_1]
    assert round_trip(client, op).headers["Location"] == "/settings/connections/"


def test_single_provider_reads_its_allowed_hosts_from_the_environment():
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "SOCIAL_AUTH_"))}
    env.update(DJANGO_SETTINGS_MODULE="linking_site.settings_test")
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SOCIAL_AUTH_OIDC_ENDPOINT_HOSTS)"
    )

    def run(value: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=Path(__file__).resolve().parent.parent,
            env={**env, "SOCIAL_AUTH_OIDC_ENDPOINT_HOSTS": value},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    good = run("Graph.Microsoft.com, login.other.test:8443")
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == "['graph.microsoft.com', 'login.other.test:8443']"
    bad = run("https://graph.microsoft.com/v1")
    assert bad.returncode != 0 and "SOCIAL_AUTH_OIDC_ENDPOINT_HOSTS" in bad.stderr
