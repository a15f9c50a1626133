"""Helpers for the authorization server's tests: applications, PKCE, and the authorize round trip
driven like a browser with Django's test client (the consent page's form is read and posted)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

from oauth2_provider.forms import AllowForm

from authserver.applications import register

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
REFRESH_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:refresh_token"
REDIRECT = "https://app.example.com/callback"
MCP_RESOURCE = "http://127.0.0.1:8765/mcp"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def web_app(name: str = "Acme Agent", **kwargs):
    """A staff-registered confidential application; returns (application, secret)."""
    kwargs.setdefault("redirect_uris", [REDIRECT])
    made = register(name=name, **kwargs)
    return made.application, made.secret


def resource_server(name: str = "Example MCP server", resource: str = MCP_RESOURCE, **kwargs):
    made = register(name=name, redirect_uris=[], resource=resource, **kwargs)
    return made.application, made.secret


def authorize_query(app, *, challenge: str, scope: str | None = "openid vault:github", **extra) -> dict:
    query = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT,
        "state": "st-" + secrets.token_hex(4),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    if scope is not None:
        query["scope"] = scope
    return {k: v for k, v in query.items() if v is not None}


class _ConsentFields(HTMLParser):
    """The consent form's fields (the page's other forms, such as "Sign out", are not it)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "input" and a.get("name") in CONSENT_FIELDS:
            self.fields.setdefault(a["name"], []).append(a.get("value", ""))


CONSENT_FIELDS = set(AllowForm.base_fields) | {"csrfmiddlewaretoken"}


def consent_form(response) -> tuple[str, dict[str, list[str]]]:
    """The consent page's form as a browser would post it (hidden fields)."""
    parser = _ConsentFields()
    parser.feed(response.content.decode())
    parser.fields.pop("csrfmiddlewaretoken", None)
    return "/oauth/authorize/", parser.fields


def allow(client, page, *, deny: bool = False):
    """Click Allow (or Deny) on a consent page; returns the redirect response."""
    _action, data = consent_form(page)
    if not deny:
        data["allow"] = ["Allow"]
    return client.post("/oauth/authorize/", data)


def code_from(response) -> dict[str, str]:
    location = response.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(client, app, *, scope: str | None = "openid vault:github", **extra) -> tuple[str, str, dict]:
    """Authorize with PKCE and click Allow: (code, verifier, the redirect's query)."""
    verifier, challenge = pkce()
    page = client.get(
        "/oauth/authorize/?" + urlencode(authorize_query(app, challenge=challenge, scope=scope, **extra))
    )
    if page.status_code == 200:
        page = allow(client, page)
    assert page.status_code == 302, page.content[:400]
    query = code_from(page)
    assert "code" in query, query
    return query["code"], verifier, query


def basic(app, secret: str) -> dict[str, str]:
    raw = f"{app.client_id}:{secret}".encode()
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(raw).decode()}


def tokens(client, app, secret, code: str, verifier: str, **extra) -> dict:
    response = client.post(
        "/oauth/token/",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            **extra,
        },
        **basic(app, secret),
    )
    assert response.status_code == 200, response.content
    return response.json()


def exchange(client, caller, secret, subject: str, *, path: str = "/oauth/token/", **fields):
    data = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "connection": "github",
        **fields,
    }
    return client.post(path, data, **(basic(caller, secret) if secret else {}))
