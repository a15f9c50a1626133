"""Helpers for the issue 20 OpenID Connect tests (tests/test_sec_oidc_*.py).

``fake_ops`` puts any number of in-process fake providers (``oidc_fixtures.FakeProvider``, real
response shapes) on the network edge at once, each under its own issuer, so a test can re-point a
provider from one issuer to another between sign-ins the way an operator changes the settings
between restarts. The site's settings are changed with pytest-django's ``settings`` fixture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from social_django.models import UserSocialAuth

from accounts.activity_kinds import AccountKind
from accounts.middleware import AuthFlowErrorMiddleware
from accounts.oidc import backend as oidc_backend
from accounts.oidc import config as oidc_config
from activity.models import Activity

from .flows import messages_on
from .oidc_fixtures import FakeProvider, _FakeAdapter, with_backend


@dataclass
class TunableProvider(FakeProvider):
    """A fake provider whose token response can be changed too (``token_changes``)."""

    token_changes: dict[str, Any] = field(default_factory=dict)

    def _token(self, request, form):
        status, body = super()._token(request, form)
        if status == 200 and self.token_changes:
            body = {**body, **self.token_changes}
            self.issued[-1] = body
        return status, body


class FakeOps:
    """Several fake providers on the network edge; ``add(issuer)`` makes one more."""

    def __init__(self) -> None:
        self.providers: dict[str, TunableProvider] = {}
        self.adapters: dict[str, _FakeAdapter] = {}

    def add(self, issuer: str, **kwargs: Any) -> TunableProvider:
        provider = TunableProvider(issuer=issuer, **kwargs)
        self.providers[issuer] = provider
        self.adapters[issuer] = _FakeAdapter(provider)
        return provider

    def adapter_for(self, url: str) -> _FakeAdapter | None:
        for issuer, adapter in self.adapters.items():
            if url.startswith(issuer + "/"):
                return adapter
        return None


@pytest.fixture
def fake_ops(monkeypatch) -> FakeOps:
    ops = FakeOps()
    original = requests.Session.get_adapter

    def get_adapter(self, url):
        return ops.adapter_for(url) or original(self, url)

    monkeypatch.setattr(requests.Session, "get_adapter", get_adapter)
    oidc_backend.clear_caches()
    yield ops
    oidc_backend.clear_caches()


def point_oidc_at(settings, op: FakeProvider, *, title: str = "Example IdP") -> None:
    """Configure the single ``oidc`` provider for ``op`` (an operator editing the settings)."""
    with_backend(settings, "accounts.oidc.backend.OpenIdConnectAuth")
    settings.SOCIAL_AUTH_OIDC_OIDC_ENDPOINT = op.issuer
    settings.SOCIAL_AUTH_OIDC_KEY = op.client_id
    settings.SOCIAL_AUTH_OIDC_SECRET = op.client_secret
    settings.SOCIAL_AUTH_OIDC_TITLE = title
    oidc_backend.clear_caches()  # a restart: no discovery or JWKS from before


def point_named_at(settings, name: str, op: FakeProvider, **extra: str) -> None:
    """Configure the named provider ``name`` (``OIDC_<NAME>_*``) for ``op``."""
    prefix = f"OIDC_{oidc_config.setting_prefix(name)}_"
    named = oidc_config.named_provider_settings(
        {
            "OIDC_PROVIDERS": name,
            prefix + "ENDPOINT": op.issuer,
            prefix + "KEY": op.client_id,
            prefix + "SECRET": op.client_secret,
            **{prefix + key: value for key, value in extra.items()},
        }
    )
    for setting_name, value in named.settings.items():
        setattr(settings, setting_name, value)
    for path in named.backends:
        with_backend(settings, path)
    oidc_backend.clear_caches()


def remove_backend(settings, path: str) -> None:
    settings.AUTHENTICATION_BACKENDS = [b for b in settings.AUTHENTICATION_BACKENDS if b != path]
    oidc_backend.clear_caches()


def begin(client, op: FakeProvider, provider: str = "oidc", **data: str) -> dict[str, str]:
    response = client.post(f"/login/{provider}/", data)
    assert response.status_code == 302, response.content[:500]
    location = response.headers["Location"]
    assert location.startswith(f"{op.issuer}/auth?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def round_trip(client, op: FakeProvider, provider: str = "oidc", **data: str):
    """POST begin, then the provider's redirect back with a good code (as a browser would)."""
    query = begin(client, op, provider, **data)
    op.authorize_query = query
    return client.get(
        f"/complete/{provider}/", {"code": "good-code", "state": query["state"], "iss": op.issuer}
    )


@pytest.fixture
def refusals(monkeypatch) -> list:
    """The exceptions the site turned into a message (to see which code and claim)."""
    seen: list = []
    original = AuthFlowErrorMiddleware.process_exception

    def process_exception(self, request, exception):
        seen.append(exception)
        return original(self, request, exception)

    monkeypatch.setattr(AuthFlowErrorMiddleware, "process_exception", process_exception)
    return seen


def refused_on_page(client, response, *, code: str, landing: str = "/") -> list[str]:
    """The refusal is a redirect to a page with one clear message and a LINK_REFUSED record."""
    assert response.status_code == 302, response.status_code
    assert response.headers["Location"] == landing
    assert Activity.objects.filter(kind=AccountKind.LINK_REFUSED).latest("pk").data["code"] == code
    shown = messages_on(client, landing)
    assert shown, "no message shown"
    return shown[-1:]  # the refusal's (earlier ones are from before, never displayed)


def identities() -> list[tuple[str, str, int]]:
    return sorted(UserSocialAuth.objects.values_list("provider", "uid", "user_id"))
