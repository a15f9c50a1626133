"""Pages of enterprise sign-in: the company picker, the SP metadata, and the ACS.

Thin: the begin is accounts' (``/login/saml/``, a POST with CSRF, sudo mode for a link); the ACS
hands the POST to social-auth's ``do_complete`` with the SAML backend, whose response checks are
``enterprise.acs``; a refusal gets its own page and changes nothing.
"""

from __future__ import annotations

import logging

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from social_django import views as social_views
from social_django.utils import load_backend, load_strategy

from accounts import flow_state
from accounts.activity_kinds import AccountKind
from accounts.redirects import safe_next_url
from activity import recording

from .models import EnterpriseConnection
from .picking import connection_for_email, enabled_connections
from .refusals import SamlRefused
from .sp import SpNotConfigured, saml_settings

logger = logging.getLogger(__name__)

#: Set by the page that re-posts the IdP's answer from this site (see ``acs``).
CONTINUED_FIELD = "continued"
_PURPOSES = ("signin", "reauth", "merge_proof", "link")


@never_cache
@require_GET
def choose(request: HttpRequest) -> HttpResponse:
    """ "Sign in with your company": a work email, or a pick from the enabled connections."""
    purpose = request.GET.get("purpose", "signin")
    email = request.GET.get("email", "")[:254]
    unmatched = bool(email) and connection_for_email(email) is None
    return render(
        request,
        "enterprise/choose.html",
        {
            "connections": enabled_connections(),
            "next": safe_next_url(request.GET.get("next")),
            "purpose": purpose if purpose in _PURPOSES and purpose != "link" else "",
            "email": email,
            "unmatched": unmatched,
        },
    )


@require_GET
def metadata(request: HttpRequest, slug: str) -> HttpResponse:
    """This site's SP metadata for one connection, signed, for the IdP's administrator."""
    connection = EnterpriseConnection.objects.filter(slug=slug).first()
    if connection is None:
        raise Http404("No such connection")
    try:
        config = OneLogin_Saml2_Settings(saml_settings(connection), sp_validation_only=True)
    except SpNotConfigured:
        return HttpResponse(
            "This site has no SAML key yet (SAML_SP_KEY, SAML_SP_CERT).",
            status=503,
            content_type="text/plain",
        )
    return HttpResponse(config.get_sp_metadata(), content_type="application/samlmetadata+xml")


@csrf_exempt
@never_cache
@require_POST
def acs(request: HttpRequest, slug: str) -> HttpResponse:
    """The IdP's answer. Its cross-site POST carries no session cookie (SameSite=Lax), so it is
    first posted again from this site (a same-site POST that does); then it is checked."""
    if request.POST.get(CONTINUED_FIELD) != "1":
        return render(
            request,
            "enterprise/continue.html",
            {
                "action": reverse("enterprise:acs", args=[slug]),
                "saml_response": request.POST.get("SAMLResponse", ""),
                "relay_state": request.POST.get("RelayState"),
                "field": CONTINUED_FIELD,
            },
        )
    strategy = load_strategy(request)
    request.social_strategy = strategy
    backend = load_backend(strategy, "saml", redirect_uri=reverse("enterprise:acs", args=[slug]))
    request.backend = backend
    # What social_django's own ``complete`` view does (its ``_do_login`` included), at our per-connection URL.
    try:
        return social_views.do_complete(
            backend,
            social_views._do_login,
            user=request.user,
            redirect_name="next",
            request=request,
            connection_slug=slug,
        )
    except SamlRefused as refused:
        return _refused(request, refused)


def _refused(request: HttpRequest, refused: SamlRefused) -> HttpResponse:
    logger.info("Refused a SAML response: %s", refused.code)
    flow = flow_state.pop_auth_flow(request.session, "saml")
    user = request.user if request.user.is_authenticated else None
    recording.record(
        kind=AccountKind.LINK_REFUSED,
        user=user,
        request=request,
        provider="saml",
        message=f"Refused: {refused.code}",
        data={"code": refused.code, "stage": "callback", "purpose": flow.purpose if flow else ""},
    )
    return render(
        request,
        "enterprise/refused.html",
        {"message": refused.message(), "code": refused.code, "company": refused.company},
        status=403,
    )
