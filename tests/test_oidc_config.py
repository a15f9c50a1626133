"""Configuring OpenID Connect providers: the environment format, named backends, and the checks
(``manage.py check`` and start-up) that fetch discovery and name what is wrong."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils.module_loading import import_string

from accounts.oidc import backend as oidc_backend
from accounts.oidc import checks as oidc_checks
from accounts.oidc import config as oidc_config
from accounts.oidc import discovery as oidc_discovery
from accounts.oidc import named as oidc_named
from accounts.providers import configured_providers

from . import oidc_fixtures
from .oidc_fixtures import FAKE_ISSUER, with_backend

fake_op = oidc_fixtures.fake_op
fake_site = oidc_fixtures.fake_site
ROOT = Path(__file__).resolve().parent.parent

OKTA = {
    "OIDC_PROVIDERS": "okta, entra-id",
    "OIDC_OKTA_ENDPOINT": "https://example.okta.com/oauth2/default",
    "OIDC_OKTA_KEY": "0oa-client",
    "OIDC_OKTA_SECRET": "okta-secret",
    "OIDC_OKTA_TITLE": "Okta",
    "OIDC_OKTA_SCOPES": "groups, api://x/read",
    "OIDC_OKTA_TRUST_EMAIL_VERIFIED": "on",
    "OIDC_ENTRA_ID_ENDPOINT": "https://login.microsoftonline.com/tenant-id/v2.0",
    "OIDC_ENTRA_ID_KEY": "entra-client",
    "OIDC_ENTRA_ID_SECRET": "entra-secret",
    "OIDC_ENTRA_ID_CONSENT_PROMPT": "off",
    "OIDC_ENTRA_ID_TOKEN_AUTH_METHOD": "client_secret_post",
}


# --- the environment format -------------------------------------------------------------------------


def test_named_providers_from_the_environment():
    named = oidc_config.named_provider_settings(OKTA)
    assert named.names == ["okta", "entra-id"]
    assert named.backends == ["accounts.oidc.named.OIDC_okta", "accounts.oidc.named.OIDC_entra_id"]
    s = named.settings
    assert s["SOCIAL_AUTH_OKTA_OIDC_ENDPOINT"] == "https://example.okta.com/oauth2/default"
    assert (s["SOCIAL_AUTH_OKTA_KEY"], s["SOCIAL_AUTH_OKTA_SECRET"]) == ("0oa-client", "okta-secret")
    assert s["SOCIAL_AUTH_OKTA_TITLE"] == "Okta"
    assert s["SOCIAL_AUTH_OKTA_SCOPE"] == ["groups", "api://x/read"]
    assert s["SOCIAL_AUTH_OKTA_TRUST_EMAIL_VERIFIED"] is True
    assert s["SOCIAL_AUTH_OKTA_OFFLINE_ACCESS"] is True and s["SOCIAL_AUTH_OKTA_CONSENT_PROMPT"] is True
    # Defaults and the hyphenated name's settings prefix.
    assert s["SOCIAL_AUTH_ENTRA_ID_TITLE"] == "Entra Id"
    assert s["SOCIAL_AUTH_ENTRA_ID_TRUST_EMAIL_VERIFIED"] is False
    assert s["SOCIAL_AUTH_ENTRA_ID_CONSENT_PROMPT"] is False
    assert s["SOCIAL_AUTH_ENTRA_ID_TOKEN_ENDPOINT_AUTH_METHOD"] == "client_secret_post"
    assert s["SOCIAL_AUTH_ENTRA_ID_SCOPE"] == []


def test_no_named_providers_by_default():
    assert oidc_config.named_provider_settings({}).providers == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"OIDC_PROVIDERS": "vault"}, "'vault' is reserved"),
        ({"OIDC_PROVIDERS": "oidc"}, "SOCIAL_AUTH_OIDC_OIDC_ENDPOINT"),
        ({"OIDC_PROVIDERS": "github"}, "reserved"),
        ({"OIDC_PROVIDERS": "Okta"}, "not a valid provider name"),
        ({"OIDC_PROVIDERS": "my_idp"}, "not a valid provider name"),
        ({"OIDC_PROVIDERS": "okta-"}, "not a valid provider name"),
        ({"OIDC_OKTA_ENDPOINT": ""}, "OIDC_OKTA_ENDPOINT is not set"),
        ({"OIDC_OKTA_KEY": ""}, "OIDC_OKTA_KEY is not set"),
        ({"OIDC_OKTA_SECRET": ""}, "OIDC_OKTA_SECRET is not set"),
        ({"OIDC_OKTA_ENDPOINT": "example.okta.com"}, "OIDC_OKTA_ENDPOINT must be the provider's issuer URL"),
        ({"OIDC_OKTA_TRUST_EMAIL_VERIFIED": "maybe"}, "OIDC_OKTA_TRUST_EMAIL_VERIFIED must be on or off"),
        ({"OIDC_OKTA_TOKEN_AUTH_METHOD": "private_key_jwt"}, "OIDC_OKTA_TOKEN_AUTH_METHOD must be one of"),
    ],
)
def test_bad_configuration_is_refused_with_the_variable_named(changes, message):
    environ = {**OKTA, "OIDC_PROVIDERS": "okta", **changes}
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(")):
        oidc_config.named_provider_settings(environ)


def _settings_in_subprocess(environ: dict[str, str], code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "SOCIAL_AUTH_"))}
    env.update(environ, DJANGO_SETTINGS_MODULE="linking_site.settings_test")
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_settings_turn_the_environment_into_backends():
    code = (
        "from django.conf import settings as s; from accounts.providers import configured_providers as c; "
        "import json; print(json.dumps([s.AUTHENTICATION_BACKENDS, s.OIDC_PROVIDERS, "
        "s.SOCIAL_AUTH_OKTA_KEY, [(p.name, p.title) for p in c()]]))"
    )
    environ = {
        **OKTA,
        "SOCIAL_AUTH_OIDC_OIDC_ENDPOINT": "https://idp.example.com",
        "SOCIAL_AUTH_OIDC_KEY": "k",
        "SOCIAL_AUTH_OIDC_SECRET": "s",
        "SOCIAL_AUTH_OIDC_TITLE": "Company SSO",
    }
    result = _settings_in_subprocess(environ, code)
    assert result.returncode == 0, result.stderr
    backends, names, okta_key, providers = json.loads(result.stdout.strip().splitlines()[-1])
    assert backends[-4:] == [
        "accounts.oidc.backend.OpenIdConnectAuth",
        "accounts.oidc.named.OIDC_okta",
        "accounts.oidc.named.OIDC_entra_id",
        "django.contrib.auth.backends.ModelBackend",
    ]
    assert names == ["okta", "entra-id"] and okta_key == "0oa-client"
    assert ["oidc", "Company SSO"] in providers
    assert ["okta", "Okta"] in providers and ["entra-id", "Entra Id"] in providers


def test_settings_refuse_to_load_with_a_bad_provider():
    result = _settings_in_subprocess({"OIDC_PROVIDERS": "vault"}, "pass")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "'vault' is reserved" in result.stderr


# --- named backends --------------------------------------------------------------------------------


def test_named_backend_classes_are_made_for_the_configured_names(settings):
    # The settings list OIDC_PROVIDERS (settings.py does, from the environment): each name's class
    # is made by accounts.oidc.named and imports by the path AUTHENTICATION_BACKENDS holds.
    settings.OIDC_PROVIDERS = ["okta", "entra-id"]
    okta = import_string("accounts.oidc.named.OIDC_okta")
    assert okta is oidc_named.backend_class("okta") is oidc_named.OIDC_okta
    assert issubclass(okta, oidc_backend.OpenIdConnectAuth) and okta.name == "okta"
    assert okta.__module__ == "accounts.oidc.named" and okta.__qualname__ == "OIDC_okta"
    assert import_string("accounts.oidc.named.OIDC_entra_id").name == "entra-id"
    # A name nobody configured has no class (the old module __getattr__ made one for any name).
    with pytest.raises(ImportError):
        import_string("accounts.oidc.named.OIDC_not_configured")
    with pytest.raises(AttributeError):
        oidc_named.OIDC_vault
    with pytest.raises(AttributeError):
        oidc_named.Nothing


def test_the_oidc_backend_has_one_import_path():
    # No re-export from accounts.backends any more (it hid the backends<->oidc import cycle).
    assert import_string("accounts.oidc.backend.OpenIdConnectAuth") is oidc_backend.OpenIdConnectAuth
    with pytest.raises(ImportError):
        import_string("accounts.backends.OpenIdConnectAuth")


@pytest.mark.django_db
def test_named_provider_sign_in_uses_its_own_settings_and_callback(client, fake_op, settings):
    named = oidc_config.named_provider_settings(
        {
            "OIDC_PROVIDERS": "corp",
            "OIDC_CORP_ENDPOINT": FAKE_ISSUER,
            "OIDC_CORP_KEY": fake_op.client_id,
            "OIDC_CORP_SECRET": fake_op.client_secret,
            "OIDC_CORP_TITLE": "Corp SSO",
            "OIDC_CORP_SCOPES": "groups",
            "OIDC_CORP_OFFLINE_ACCESS": "off",
        }
    )
    for name, value in named.settings.items():
        setattr(settings, name, value)
    with_backend(settings, named.backends[0])
    assert ("corp", "Corp SSO") in [(p.name, p.title) for p in configured_providers()]

    response = client.post("/login/corp/")
    query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}
    assert query["redirect_uri"] == "http://testserver/complete/corp/"
    scopes = query["scope"].split()
    assert scopes[0] == "openid" and sorted(scopes) == ["email", "groups", "openid", "profile"]
    assert "prompt" not in query  # no offline_access, so no consent prompt needed
    fake_op.authorize_query = query
    done = client.get("/complete/corp/", {"code": "good-code", "state": query["state"], "iss": FAKE_ISSUER})
    assert done.headers["Location"] == "/settings/connections/"
    from social_django.models import UserSocialAuth

    assert UserSocialAuth.objects.get().provider == "corp"


# --- discovery checks -----------------------------------------------------------------------------


GOOD = oidc_fixtures.FakeProvider().discovery()


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"issuer": "https://other.example.test"}, "E004"),
        ({"response_types_supported": ["id_token", "id_token token"]}, "E005"),
        ({"grant_types_supported": ["implicit"]}, "E005"),
        ({"token_endpoint": None}, "E006"),
        ({"jwks_uri": "http://op.example.test/jwks"}, "E002"),
        ({"id_token_signing_alg_values_supported": ["HS256", "none"]}, "E007"),
        ({"code_challenge_methods_supported": ["plain"]}, "E008"),
        ({"token_endpoint_auth_methods_supported": ["private_key_jwt"]}, "E009"),
    ],
)
def test_discovery_problems(changes, code):
    document = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    errors, _warnings = oidc_discovery.discovery_problems(
        document, configured_issuer=FAKE_ISSUER, allow_insecure=False
    )
    assert [c for c, _m in errors] == [code], errors


def test_a_good_discovery_document_has_no_problems():
    assert oidc_discovery.discovery_problems(
        GOOD, configured_issuer=FAKE_ISSUER + "/", allow_insecure=False
    ) == (
        [],
        [],
    )


def test_missing_revocation_and_offline_access_are_warnings():
    document = {**GOOD, "scopes_supported": ["openid", "email"]}
    del document["revocation_endpoint"]
    errors, warnings = oidc_discovery.discovery_problems(
        document, configured_issuer=FAKE_ISSUER, allow_insecure=False
    )
    assert errors == [] and [c for c, _m in warnings] == ["W001", "W002"]


def test_http_is_allowed_only_when_development_or_flagged():
    document = {k: (v.replace("https://", "http://") if isinstance(v, str) else v) for k, v in GOOD.items()}
    issuer = document["issuer"]
    assert oidc_discovery.discovery_problems(document, configured_issuer=issuer, allow_insecure=True)[0] == []
    errors = oidc_discovery.discovery_problems(document, configured_issuer=issuer, allow_insecure=False)[0]
    assert [c for c, _m in errors] == ["E002"]


@pytest.mark.django_db
def test_manage_py_check_passes_for_a_good_provider(fake_site):
    call_command("check", tags=["oidc"])
    assert fake_site.count("/.well-known/openid-configuration") == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda op, s: op.discovery_changes.update(issuer="https://other.example.test"), "oidc.E004"),
        (lambda op, s: op.discovery_changes.update(response_types_supported=["id_token"]), "oidc.E005"),
        (lambda op, s: setattr(s, "SOCIAL_AUTH_OIDC_OIDC_ENDPOINT", "https://127.0.0.1:9"), "oidc.E003"),
        (lambda op, s: setattr(s, "SOCIAL_AUTH_OIDC_OIDC_ENDPOINT", "http://op.example.test"), "oidc.E002"),
        (lambda op, s: setattr(s, "SOCIAL_AUTH_OIDC_SECRET", ""), "oidc.E001"),
    ],
    ids=["issuer-mismatch", "no-code-flow", "unreachable", "http-issuer", "no-secret"],
)
def test_manage_py_check_names_what_is_wrong(fake_site, settings, setup, expected):
    setup(fake_site, settings)
    with pytest.raises(SystemCheckError) as failed:
        call_command("check", tags=["oidc"])
    assert expected in str(failed.value)
    assert "OpenID Connect provider 'oidc'" in str(failed.value)


@pytest.mark.django_db
def test_http_issuer_is_accepted_with_the_insecure_flag(fake_site, settings):
    settings.OIDC_ALLOW_INSECURE_ISSUER = True
    settings.SOCIAL_AUTH_OIDC_OIDC_ENDPOINT = "http://127.0.0.1:9"
    problems = oidc_checks.provider_problems(oidc_backend.OpenIdConnectAuth)
    # Not refused for being http any more; it is simply not there.
    assert [p.id for p in problems] == ["oidc.E003"] and problems[0].unreachable


@pytest.mark.django_db
def test_startup_validation_refuses_a_misconfigured_provider(fake_site):
    fake_site.discovery_changes = {"issuer": "https://other.example.test"}
    with pytest.raises(ImproperlyConfigured, match=r"'oidc': discovery names the issuer"):
        oidc_checks.validate_at_startup()


@pytest.mark.django_db
def test_startup_validation_only_logs_an_unreachable_provider(fake_site, settings, caplog):
    settings.SOCIAL_AUTH_OIDC_OIDC_ENDPOINT = "https://127.0.0.1:9"
    with caplog.at_level(logging.ERROR, logger="accounts.oidc"):
        oidc_checks.validate_at_startup()
    assert "unreachable" in caplog.text and "'oidc'" in caplog.text


@pytest.mark.django_db
def test_discovery_fetch_can_be_turned_off(fake_site, settings):
    settings.OIDC_CHECK_DISCOVERY = False
    fake_site.discovery_changes = {"issuer": "https://other.example.test"}
    oidc_checks.validate_at_startup()
    call_command("check", tags=["oidc"])
    assert fake_site.calls == []
    settings.SOCIAL_AUTH_OIDC_SECRET = ""  # settings are still checked
    with pytest.raises(SystemCheckError, match=r"oidc\.E001"):
        call_command("check", tags=["oidc"])


def test_interop_fixture_fails_instead_of_skipping_without_node(monkeypatch):
    monkeypatch.setattr(oidc_fixtures.shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"Node\.js is not installed"):
        oidc_fixtures.ensure_node_packages()
