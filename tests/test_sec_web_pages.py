"""Issue 12, HTTP level, pages: no state change on GET (12.8), no secret on a debug page (12.*,
20.7), a strict Content-Security-Policy and no-store on signed-in pages (12.*), NUL characters
in query strings and cookies (12.7's family)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client, override_settings
from django.urls import path as url_path

from accounts import flow_state
from accounts.models import User
from activity.models import Activity
from vault import agents
from vault.models import ConnectRequest

from .flows import round_trip, sign_in

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def alice(client) -> User:
    sign_in(client, "github", email="alice@example.com", name="Alice")
    return User.objects.get(email="alice@example.com")


@pytest.fixture
def key(alice) -> str:
    return agents.create_agent_key(user=alice, name="helper bot", providers=["github", "google-oauth2"])[1]


def _connect_request(key: str, connection: str = "google-oauth2", scopes: list[str] | None = None) -> str:
    response = Client().post(
        "/api/v1/connect-requests",
        json.dumps({"connection": connection, "scopes": scopes or ["email"]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _approvals() -> int:
    return Activity.objects.filter(message__startswith="Approved agent").count()


# --- 12.8: no state change on GET ---------------------------------------------------------------


def test_following_a_link_to_done_completes_nothing_and_records_nothing(client, alice, key):
    request_id = _connect_request(key)
    # Alice links Google with the asked scope some other way (not through the request's button).
    round_trip(client, "google-oauth2", email="alice@example.com", scope=["email"])
    page = client.get(f"/connect/{request_id}/done/")  # e.g. a link in a mail or on another site
    assert page.status_code == 200
    assert ConnectRequest.objects.get(pk=request_id).status == "pending"
    assert _approvals() == 0
    html = page.content.decode()
    assert 'method="post"' in html and "csrfmiddlewaretoken" in html and "Let the agent continue" in html


def test_approving_is_a_post_with_a_csrf_token(alice, key):
    request_id = _connect_request(key)
    signed_in = Client()
    sign_in(signed_in, "github", email="alice@example.com")
    result = round_trip(
        signed_in,
        "google-oauth2",
        email="alice@example.com",
        scope=["email"],
        next=f"/connect/{request_id}/done/",
    )
    assert result.location == f"/connect/{request_id}/done/"
    browser = Client(enforce_csrf_checks=True)  # the same browser, now checked like a real one
    browser.cookies = signed_in.cookies
    confirm = browser.get(result.location)
    assert ConnectRequest.objects.get(pk=request_id).status == "pending"
    assert browser.post(f"/connect/{request_id}/done/").status_code == 403  # forged: no CSRF token
    assert ConnectRequest.objects.get(pk=request_id).status == "pending" and _approvals() == 0
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', confirm.content.decode()).group(1)
    done = browser.post(f"/connect/{request_id}/done/", {"csrfmiddlewaretoken": token})
    assert done.status_code == 200 and "the agent can continue" in done.content.decode()
    assert ConnectRequest.objects.get(pk=request_id).status == "completed" and _approvals() == 1


def test_the_confirm_page_says_when_the_provider_did_not_grant_enough(client, alice, key):
    request_id = _connect_request(key, scopes=["email", "https://www.googleapis.com/auth/drive.readonly"])
    round_trip(client, "google-oauth2", email="alice@example.com", scope=["email"])
    html = client.get(f"/connect/{request_id}/done/").content.decode()
    assert "did not give what the agent asked for" in html and "data-confirm-done" not in html
    client.post(f"/connect/{request_id}/done/")
    assert ConnectRequest.objects.get(pk=request_id).status == "pending"


def _tables() -> dict[str, object]:
    """Every row count, and the rows a GET could most plausibly change."""
    from django.apps import apps
    from social_django.models import UserSocialAuth

    from accounts.models import IdentityDetails
    from vault.models import AgentKey, TokenSet

    counts: dict[str, object] = {
        model._meta.label: model.objects.count()
        for app in ("accounts", "vault", "social_django", "sandbox")
        for model in apps.get_app_config(app).get_models()
    }
    counts["rows"] = [
        list(ConnectRequest.objects.order_by("pk").values_list("pk", "status", "identity_id")),
        list(AgentKey.objects.order_by("pk").values_list("pk", "revoked_at")),
        list(IdentityDetails.objects.order_by("pk").values_list("pk", "is_default")),
        list(UserSocialAuth.objects.order_by("pk").values_list("pk", "user_id")),
        list(TokenSet.objects.order_by("pk").values_list("pk", "status", "version")),
        list(User.objects.order_by("pk").values_list("pk", "is_active", "merged_into_id", "email")),
    ]
    return counts


def test_no_page_changes_anything_on_get(client, alice, key):
    """Every page of accounts/ and vault/ a signed-in person can GET, with every id it takes."""

    request_id = _connect_request(key)
    identity = alice.social_auth.get()
    round_trip(client, "google-oauth2", email="alice@example.com", scope=["email"])  # covers the request
    key_id = agents.authenticate_agent_key(key).pk
    session = client.session
    flow_state.mark_signed_in(session)  # sudo mode: the pages behind it render too
    session.save()
    paths = [
        "/",
        "/settings/connections/",
        "/settings/connections/?connect=google-oauth2&scope=email",
        f"/settings/connections/{identity.pk}/disconnect/",
        f"/settings/connections/{identity.pk}/default/",
        "/settings/reauthenticate/",
        "/settings/activity/",
        "/settings/agents/",
        f"/settings/agents/{key_id}/revoke/",
        f"/connect/{request_id}/",
        f"/connect/{request_id}/done/",
        f"/connect/{request_id}/decline/",
        "/signin/existing-profile/",
        "/signin/existing-profile/link/",
        "/settings/merge/start/",
        "/settings/merge/prove/",
        "/settings/merge/review/",
        "/settings/merge/confirm/",
        "/logout/",
        "/login/github/",
        "/staff/login/",
        "/healthz",
        "/readyz",
        "/api/v1/connect-requests",
        "/api/v1/token",
    ]
    before = _tables()
    activities = list(Activity.objects.values_list("id", flat=True))
    for page in paths:
        assert client.get(page).status_code < 500, page
    assert _tables() == before
    assert list(Activity.objects.values_list("id", flat=True)) == activities
    assert client.get("/settings/connections/").status_code == 200  # still signed in
    assert ConnectRequest.objects.get(pk=request_id).status == "pending"


# --- 12.* / 20.7: no secrets on debug pages --------------------------------------------------------


def _boom(request, *args, **kwargs):
    """A view that fails while secrets are in its locals, its request and its arguments."""
    bearer = request.META.get("HTTP_AUTHORIZATION", "")
    value = bearer.partition(" ")[2]  # named nothing like a secret
    # Built here (the page shows this source), so only the locals' names say they are secrets.
    params = {
        "code_verifier": "canary-" + "verifier-0123456789",
        "client_secret": "canary-" + "client-secret-0123",
    }
    tokens = {
        "access_token": "canary-" + "access-0123456789",
        "refresh_token": "canary-" + "refresh-0123456789",
    }
    assert params and tokens  # locals the report would show
    raise RuntimeError(f"failed with {value}")  # even the message carries the key


urlpatterns = [url_path("boom/", _boom)]


CANARIES = (
    "canary-verifier-0123456789",
    "canary-client-secret-0123",
    "canary-access-0123456789",
    "canary-refresh-0123456789",
    "canary-subject-token-0123",
    "canary-code-0123456789",
    "canary-state-0123456789",
    "canary-session-0123456789",
)


@override_settings(DEBUG=True, ROOT_URLCONF=__name__)
def test_a_debug_500_page_shows_no_key_token_code_or_cookie(key):
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "canary-session-0123456789"
    for accept in ("text/html", "text/plain"):
        response = client.post(
            "/boom/?code=canary-code-0123456789&state=canary-state-0123456789",
            {
                "subject_token": "canary-subject-token-0123",
                "connection": "github",
            },
            HTTP_AUTHORIZATION=f"Bearer {key}",
            HTTP_ACCEPT=accept,
        )
        assert response.status_code == 500
        page = response.content.decode()
        assert "RuntimeError" in page and "connection" in page  # it is the debug page
        assert key not in page and key[4:20] not in page
        for canary in CANARIES:
            assert canary not in page, canary


@override_settings(DEBUG=True)
def test_a_debug_500_on_the_token_endpoint_hides_the_agent_key(alice, key, monkeypatch):
    """The attack run's case: DEBUG on, a fault inside the token call, the caller's key on the page."""

    def fault(**kwargs):
        raise RuntimeError("simulated fault")

    monkeypatch.setattr("vault.issuing.issue_token", fault)
    response = Client(raise_request_exception=False).post(
        "/api/v1/token",
        "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&connection=github&subject_token=" + key,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 500
    assert key not in response.content.decode()


def test_error_reports_for_mail_and_logs_hide_secrets_too(key):
    from django.test import RequestFactory
    from django.views.debug import ExceptionReporter, get_exception_reporter_class

    request = RequestFactory().post(
        "/x/?code=canary-code-0123456789",
        {"password": "canary-password-0123"},
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    reporter_class = get_exception_reporter_class(request)
    assert issubclass(reporter_class, ExceptionReporter)
    try:
        _boom(request)
    except RuntimeError:
        import sys

        text = reporter_class(request, *sys.exc_info()).get_traceback_text()
    assert key not in text and "canary-code-0123456789" not in text and "canary-password-0123" not in text
    assert "canary-verifier-0123456789" not in text and "canary-access-0123456789" not in text


# --- 12.*: Content-Security-Policy and no-store -----------------------------------------------------


def _csp(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_every_page_has_a_strict_content_security_policy(client, alice):
    for page in (
        "/settings/connections/",
        "/settings/agents/",
        "/settings/activity/",
        "/api/v1/openapi.json",
    ):
        policy = _csp(client.get(page))
        assert policy.get("default-src") == ["'self'"], page
        assert policy.get("script-src") == ["'self'"] and policy.get("style-src") == ["'self'"]
        assert policy.get("frame-ancestors") == ["'none'"] and policy.get("object-src") == ["'none'"]
        assert policy.get("base-uri") == ["'none'"]
    assert _csp(Client().get("/")).get("script-src") == ["'self'"]  # the sign-in page too


def test_sign_in_forms_may_still_go_to_the_providers():
    """Chromium applies form-action to the redirect after "Continue with ...": providers must fit."""
    policy = _csp(Client().get("/"))
    assert "'self'" in policy["form-action"] and "https:" in policy["form-action"]


def test_templates_carry_no_inline_script_or_style():
    sources = [*ROOT.glob("templates/**/*.html"), *ROOT.glob("*/templates/**/*.html")]
    assert sources
    for source in sources:
        text = source.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), source
        assert "<style" not in text and " style=" not in text, source
        assert not re.search(r"\son[a-z]+=", text), source  # onclick=... handlers


def test_sandbox_pages_load_their_style_from_a_file(client):
    page = client.get("/sandbox/")
    assert page.status_code == 200
    css = re.search(r'<link rel="stylesheet" href="([^"]+sandbox\.css)"', page.content.decode()).group(1)
    assert client.get(css).status_code == 200


def test_every_signed_in_page_is_no_store(client, alice):
    for page in (
        "/settings/connections/",
        "/settings/activity/",
        "/settings/agents/",
        "/settings/reauthenticate/",
    ):
        response = client.get(page)
        assert response.status_code == 200, page
        assert "no-store" in response.headers.get("Cache-Control", ""), page
        assert "private" in response.headers["Cache-Control"]
    assert "no-store" not in Client().get("/").headers.get("Cache-Control", "")  # public pages may cache


# --- 12.7's family: NUL characters outside ids --------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/complete/github/?partial_token=%00abc&state=x&code=y",  # social-auth looks partial_token up
        "/?next=%00",
        "/settings/activity/?page=1%00",
    ],
)
def test_a_nul_in_a_query_string_is_a_400_not_a_500(path):
    response = Client(raise_request_exception=False).get(path)
    assert response.status_code == 400
    response = Client(raise_request_exception=False).get("/api/v1/connections?x=%00")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_a_session_cookie_with_a_nul_is_ignored_not_a_500(client, alice):
    broken = Client(raise_request_exception=False)
    broken.cookies["sessionid"] = "abcdefgh\x00ijklmnop"
    assert broken.get("/settings/connections/").status_code == 302  # not signed in: to sign-in
    assert broken.get("/").status_code == 200


def test_the_csp_package_is_pinned():
    lock = (ROOT / "requirements.lock").read_text()
    assert (
        re.search(r"^django-csp==\d", lock, re.M) and "django-csp" in (ROOT / "requirements.in").read_text()
    )
    assert "csp.middleware.CSPMiddleware" in django_settings.MIDDLEWARE


@pytest.mark.parametrize("action", ["change", "delete", "history"])
def test_the_admin_checks_a_connect_request_id_before_any_query(staff, client, action):
    """Admin-adjacent: a NUL in the id was a 500 on PostgreSQL; now "does not exist"."""
    browser = Client(raise_request_exception=False)
    browser.cookies = client.cookies
    answer = browser.get(f"/admin/vault/connectrequest/cr_%00/{action}/")
    assert answer.status_code in (302, 403, 404)  # 403: the admin allows no deleting here
