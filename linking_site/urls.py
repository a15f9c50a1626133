"""Top-level URLs: the site's pages, social-auth's begin/complete, the agent API, staff, health."""

import logging

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.urls import include, path

from accounts import views as accounts_views
from vault.api import json_error_handler

# Errors raised outside a view (middleware, a bad Host header): JSON under /api/, pages elsewhere.
# The pages are the site's own (accounts/templates/400.html, 403.html, 404.html, 500.html, and
# 403_csrf.html for Django's default CSRF_FAILURE_VIEW), in the site layout.
handler400 = json_error_handler(400)
handler403 = json_error_handler(403)
handler404 = json_error_handler(404)
_site_server_error = json_error_handler(500)
_PLAIN_500 = "<!doctype html><title>Server error</title><h1>Something went wrong on our side.</h1>"


def handler500(request: HttpRequest) -> HttpResponse:
    """The site's 500 page, or a plain one when even the layout cannot be drawn (a missing static
    manifest: collectstatic was not run), so an error never ends in a second traceback."""
    try:
        return _site_server_error(request)
    except Exception:
        logging.getLogger("django.request").exception("The 500 page itself failed")
        return HttpResponseServerError(_PLAIN_500)


urlpatterns = [
    # The vault's first: the agent API is the hottest path, and resolving walks the list in order.
    path("", include("vault.urls")),
    path("", include("accounts.urls")),
    path("", include("accounts.social_urls", namespace="social")),
    # The site as an OAuth 2.1 / OpenID Connect authorization server (authserver/).
    path("oauth/", include("authserver.oauth_urls")),
    path("", include("authserver.urls")),
    path("", include("enterprise.urls")),
    path("admin/", admin.site.urls),
    path("healthz", accounts_views.healthz, name="healthz"),
    path("readyz", accounts_views.readyz, name="readyz"),
]

if settings.SANDBOX_PROVIDERS:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
