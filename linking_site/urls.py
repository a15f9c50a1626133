"""Top-level URLs: the site's pages, social-auth's begin/complete, the agent API, staff, health."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from accounts import views as accounts_views
from vault.api import json_error_handler

# Errors raised outside a view (middleware, a bad Host header): JSON under /api/, pages elsewhere.
handler400 = json_error_handler(400)
handler403 = json_error_handler(403)
handler404 = json_error_handler(404)
handler500 = json_error_handler(500)

urlpatterns = [
    path("", include("accounts.urls")),
    path("", include("accounts.social_urls", namespace="social")),
    path("", include("vault.urls")),
    path("admin/", admin.site.urls),
    path("healthz", accounts_views.healthz, name="healthz"),
    path("readyz", accounts_views.readyz, name="readyz"),
]

if settings.SANDBOX_PROVIDERS:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
