"""The sandbox's own pages: its index (what stands in for what, failure switches) and avatars.

The stand-ins' endpoints are elsewhere: ``authorize`` (the sign-in page both providers share),
``google_views`` and ``github_views`` (their server-to-server endpoints).
"""

from __future__ import annotations

import hashlib
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from . import state
from .answers import TITLES, display_name
from .models import FAILURE_MODE_CHOICES, Grant
from .providers import GITHUB, GOOGLE, PROVIDERS, client_credentials, token_ttl

#: The index lists what each stand-in serves, by URL name (``sandbox/urls.py``).
ENDPOINTS = {
    GOOGLE: ("google_authorize", "google_token", "google_userinfo", "google_revoke"),
    GITHUB: (
        "github_authorize",
        "github_token",
        "github_user",
        "github_user_emails",
        "github_delete_grant",
    ),
}


def _endpoint_url(request: HttpRequest, name: str) -> str:
    """The endpoint's absolute URL; the client id in GitHub's grant URL shown as a placeholder."""
    kwargs = {"client_id": "<client_id>"} if name == "github_delete_grant" else {}
    return unquote(request.build_absolute_uri(reverse(f"sandbox:{name}", kwargs=kwargs)))


@require_GET
def avatar(request: HttpRequest, provider: str, subject: str) -> HttpResponse:
    """A generated initials avatar, so profile pictures render with no network."""
    grant = Grant.objects.filter(provider=provider, subject=subject).order_by("-pk").first()
    name = display_name(grant) if grant else "?"
    initials = "".join(word[0] for word in name.split()[:2]).upper() or "?"
    hue = int(hashlib.sha256(subject.encode()).hexdigest()[:4], 16) % 360
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
        f'<rect width="96" height="96" fill="hsl({hue},55%,40%)"/>'
        '<text x="48" y="61" font-family="sans-serif" font-size="40" fill="#fff" text-anchor="middle">'
        f"{escape(initials)}</text></svg>"
    )
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response["Cache-Control"] = "max-age=300"
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    """The sandbox's own page: what stands in for what, and switches for simulated failures."""
    if request.method == "POST":
        if request.POST.get("action") == "reset":
            state.reset()
        else:
            modes = {provider: request.POST.get(f"{provider}_mode") for provider in PROVIDERS}
            if any(mode is not None and mode not in state.FAILURE_MODES for mode in modes.values()):
                return HttpResponse("Unknown failure mode.", status=400, content_type="text/plain")
            for provider, mode in modes.items():
                if mode is not None:
                    state.set_failure_mode(provider, mode)
        return HttpResponseRedirect(reverse("sandbox:index") + "?saved=1")
    providers = []
    for provider, names in ENDPOINTS.items():
        providers.append(
            {
                "key": provider,
                "title": TITLES[provider],
                "client_id": client_credentials(provider)[0],
                "mode": state.get_failure_mode(provider),
                "refresh_requests": state.refresh_count(provider),
                "refresh_successes": state.refresh_count(provider, successful=True),
                "endpoints": [_endpoint_url(request, name) for name in names],
            }
        )
    context = {
        "providers": providers,
        "modes": FAILURE_MODE_CHOICES,
        "grants": Grant.objects.order_by("-pk")[:20],
        "token_ttl": token_ttl(),
        "saved": request.GET.get("saved") == "1",
    }
    return render(request, "sandbox/index.html", context)
