"""The site's URLs plus a test-only probe (loaded only by ``tests.deploy_settings``).

``/deploy-test/token?user=<id>`` calls ``vault.get_access_token`` for that user's GitHub account and
answers a hash of the token (never the token) with the worker's process id;
``/deploy-test/refresh-count`` answers how many refresh grants reached the sandbox's GitHub.
"""

import hashlib
import os

from django.http import JsonResponse
from django.urls import include, path

import vault
from accounts.models import User
from sandbox import state


def token_probe(request):
    user = User.objects.filter(pk=request.GET.get("user") or 0).first()
    if user is None:
        return JsonResponse({"error": "no such user"}, status=400)
    try:
        token = vault.get_access_token(user, "github")
    except vault.TokenVaultError as error:
        return JsonResponse({"error": error.code, "pid": os.getpid()}, status=error.status)
    digest = hashlib.sha256(token.access_token.encode()).hexdigest()
    return JsonResponse({"token_sha256": digest, "pid": os.getpid()})


def refresh_count(request):
    return JsonResponse({"github": state.refresh_count("github")})


urlpatterns = [
    path("deploy-test/token", token_probe),
    path("deploy-test/refresh-count", refresh_count),
    path("", include("linking_site.urls")),
]
