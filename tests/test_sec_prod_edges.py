"""Production edges (issue 14 item 7): with DEBUG off the site answers its own 404, 500 and CSRF pages
in its layout (never Django's bare pages, never a traceback), and serves a favicon.

The favicon and 404 checks run the production settings in a child process after ``collectstatic``
(whitenoise and the manifest storage as deployed); the 500 and CSRF checks run in the test process,
where DEBUG is off too.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import path

from linking_site import urls as site_urls

from .deploy_support import collected_static, get_with

LAYOUT_MARK = 'class="site-header"'


def _boom(request):
    raise RuntimeError("secret-looking detail that must not reach the page")


# A URLconf with a view that fails, using the site's own error handlers.
urlpatterns = [path("boom/", _boom), *site_urls.urlpatterns]
handler500 = site_urls.handler500
handler404 = site_urls.handler404


def test_404_page_and_favicon_with_production_settings(tmp_path):
    env, manifest = collected_static(tmp_path)
    hashed = manifest["favicon.svg"]

    answers = get_with(env, "/no-such-page/", f"/static/{hashed}", "/api/no-such")

    missing = answers["/no-such-page/"]
    assert missing["status"] == 404
    assert LAYOUT_MARK in missing["body"] and "Page not found" in missing["body"]
    assert "Not Found</h1>" not in missing["body"]  # Django's bare page
    # Every page links the favicon by its versioned name, and whitenoise serves it.
    assert f'rel="icon" href="/static/{hashed}"' in missing["body"]
    icon = answers[f"/static/{hashed}"]
    assert icon["status"] == 200 and icon["type"].startswith("image/svg+xml")
    assert icon["body"].startswith("<svg")
    # The agent API keeps its JSON errors.
    api = answers["/api/no-such"]
    assert api["status"] == 404 and json.loads(api["body"])["error"] == "not_found"


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_500_page_is_the_sites_own_without_a_traceback(settings):
    assert settings.DEBUG is False
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert LAYOUT_MARK in body and "Something went wrong" in body
    assert "RuntimeError" not in body and "secret-looking" not in body and "Traceback" not in body


@pytest.mark.django_db
def test_csrf_failure_page_is_the_sites_own(settings):
    assert settings.DEBUG is False
    response = Client(enforce_csrf_checks=True).post("/staff/login/", {"username": "a", "password": "b"})
    assert response.status_code == 403
    body = response.content.decode()
    assert LAYOUT_MARK in body and "This form has expired" in body
    assert "CSRF verification failed" not in body  # Django's bare page


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_500_page_still_answers_when_the_layout_cannot_be_drawn(settings, tmp_path):
    # collectstatic never ran: every {% static %} fails, the site's 500 page too.
    settings.STATIC_ROOT = str(tmp_path)
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong on our side." in body and "Traceback" not in body


def test_favicon_ico_is_sent_to_the_sites_icon(client):
    # Pages without an icon link (the admin, the sandbox) make browsers ask for /favicon.ico.
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response.headers["Location"].endswith("favicon.svg")
    assert client.get(response.headers["Location"]).status_code == 200
