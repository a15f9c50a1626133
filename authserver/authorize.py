"""The authorize endpoint's consent page: the toolkit's ``AuthorizationView`` with the site's rules.

What it adds: the page a person understands (``authserver/authorize.html``: the application's name,
staff-registered or self-registered, the redirect host, what it may do in plain words); sudo mode
before vault access is granted; consent remembered per application and scope set (asked again when
the set grows); and the Content-Security-Policy ``form-action`` that lets the browser follow the
answer to the application's redirect URI.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from oauth2_provider.forms import AllowForm
from oauth2_provider.models import Application
from oauth2_provider.views import AuthorizationView

from accounts import sudo

from . import clients, consent
from .scopes import connection_of, plain_words, policy_of
from .validator import is_known_audience

_CARRIED = (
    "client_id",
    "redirect_uri",
    "response_type",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "claims",
    "resource",
)


def _asks_vault(scopes: list[str]) -> bool:
    return any(connection_of(scope) for scope in scopes)


def _origin(uri: str) -> str:
    parts = urlsplit(uri or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


class ConsentView(AuthorizationView):
    template_name = "authserver/authorize.html"

    def get(self, request, *args, **kwargs) -> HttpResponse:
        # Refused before any page: PKCE's "plain" method (the toolkit refuses it only after consent,
        # when the code is made), and audiences this server does not issue tokens for (RFC 8707).
        if request.GET.get("code_challenge") and request.GET.get("code_challenge_method") != "S256":
            return self._refused("invalid_request", "PKCE with code_challenge_method=S256 is required.")
        unknown = [uri for uri in request.GET.getlist("resource") if not is_known_audience(uri)]
        if unknown:
            return self._refused(
                "invalid_target", f"The resource {unknown[0][:100]!r} is not one this server serves."
            )
        if "approval_prompt" in request.GET:
            # The toolkit's approval_prompt=auto would let a request skip this page; consent here is
            # remembered by ``authserver.consent`` alone.
            request.GET = request.GET.copy()
            request.GET.pop("approval_prompt")
        return super().get(request, *args, **kwargs)

    def _refused(self, code: str, description: str) -> HttpResponse:
        return super().render_to_response({"error": {"error": code, "description": description}}, status=400)

    def render_to_response(self, context, **kwargs) -> HttpResponse:
        application = context.get("application")
        form = context.get("form")
        if application is None or form is None or "error" in context:
            return super().render_to_response(context, **kwargs)  # the error page
        scopes = list(context.get("scopes") or [])
        if consent.is_remembered(user=self.request.user, application=application, scopes=scopes):
            allowed = AllowForm(data={**{k: v for k, v in form.initial.items() if v}, "allow": "Allow"})
            if allowed.is_valid():
                return self.form_valid(allowed)
        if _asks_vault(scopes) and not sudo.is_recent(self.request):
            return HttpResponseRedirect(sudo.reauthenticate_url(self.request.get_full_path()))
        provider_scopes = consent.provider_scopes_for(application, scopes)
        context.update(
            app_title=application.name or application.client_id,
            self_registered=clients.is_self_registered(application),
            redirect_host=clients.redirect_host(context.get("redirect_uri", "")),
            lines=plain_words(scopes, provider_scopes),
            asks_vault=_asks_vault(scopes),
            logo_url=getattr(policy_of(application), "logo_url", ""),
        )
        response = super().render_to_response(context, **kwargs)
        origin = _origin(context.get("redirect_uri", ""))
        if origin:
            # The answer to "Allow" is a redirect there; browsers hold it to the page's form-action.
            response._csp_update = {"form-action": [origin]}
        return response

    def form_valid(self, form) -> HttpResponse:
        data = form.cleaned_data
        scopes = (data.get("scope") or "").split()
        application = Application.objects.filter(client_id=data.get("client_id")).first()
        remembered = application is not None and consent.is_remembered(
            user=self.request.user, application=application, scopes=scopes
        )
        if data.get("allow") and _asks_vault(scopes) and not remembered and not sudo.is_recent(self.request):
            # The confirmation expired while the page was open: confirm, then see the page again.
            again = f"{reverse('oauth2_provider:authorize')}?{urlencode(self._carried(data))}"
            return HttpResponseRedirect(sudo.reauthenticate_url(again))
        response = super().form_valid(form)
        location = response.get("Location", "")
        if data.get("allow") and application is not None and "error=" not in urlsplit(location).query:
            consent.grant(
                user=self.request.user, application=application, scopes=scopes, request=self.request
            )
        return response

    @staticmethod
    def _carried(data: dict) -> dict[str, str]:
        return {name: data[name] for name in _CARRIED if data.get(name)}
