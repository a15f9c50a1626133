"""Drive real sign-in and linking round trips through the sandbox with Django's test client.

Every step is the real one: POST begin (social-auth makes ``state``), follow the provider's
authorize page and submit its form like a person, then hit the callback with what the provider
sent back. Provider-to-site server calls reach the sandbox in-process (``tests.sandbox_support``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

from django.test import Client


class _FormParser(HTMLParser):
    """Collects the first form's action, fields and submit buttons, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: list[tuple[str, str]] = []
        self.checkboxes: dict[str, list[tuple[str, bool]]] = {}
        self.buttons: list[tuple[str, str, str]] = []
        self._in_form = False
        self._done = False
        self._button: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if self._done:
            return
        if tag == "form" and not self._in_form:
            self._in_form = True
            self.action = a.get("action", "")
            return
        if not self._in_form:
            return
        if tag == "input":
            kind = a.get("type", "text").lower()
            name = a.get("name")
            if not name:
                return
            if kind == "checkbox":
                self.checkboxes.setdefault(name, []).append((a.get("value", "on"), "checked" in a))
            elif kind == "submit":
                self.buttons.append((name, a.get("value", ""), a.get("value", "")))
            elif kind not in ("button", "reset", "image", "file"):
                self.fields.append((name, a.get("value", "")))
        elif tag == "button":
            self._button = {"name": a.get("name", ""), "value": a.get("value", ""), "text": ""}

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            self.buttons.append((self._button["name"], self._button["value"], self._button["text"].strip()))
            self._button = None
        elif tag == "form" and self._in_form:
            self._in_form = False
            self._done = True


@dataclass
class FlowResult:
    """Where a round trip ended: the callback's response and the URLs seen on the way."""

    response: object
    authorize_url: str = ""
    callback_url: str = ""
    authorize_query: dict = field(default_factory=dict)

    @property
    def location(self) -> str:
        return self.response.headers.get("Location", "")  # type: ignore[attr-defined]


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def start(client: Client, provider: str, **post: object) -> tuple[object, str]:
    """POST begin; returns (response, authorize URL) — the URL is empty when begin did not redirect there."""
    response = client.post(f"/login/{provider}/", post)
    location = response.headers.get("Location", "")
    return response, location if "/sandbox/" in location else ""


def provider_page(
    client: Client,
    authorize_url: str,
    *,
    email: str,
    name: str = "",
    verified: bool = True,
    scopes: list[str] | None = None,
    deny: bool = False,
) -> str:
    """Fill and submit the sandbox sign-in form; returns the redirect back to the site."""
    page = client.get(_path(authorize_url))
    assert page.status_code == 200, page.content[:500]
    parser = _FormParser()
    parser.feed(page.content.decode())
    data: dict[str, list[str]] = {}
    for key, value in parser.fields:
        data.setdefault(key, []).append(value)
    data["email"] = [email]
    data["name"] = [name or email.split("@")[0].title()]
    for box, options in parser.checkboxes.items():
        if "verif" in box:
            data[box] = ["on"] if verified else []
        elif scopes is None:
            data[box] = [value for value, checked in options if checked]
        else:
            data[box] = [value for value, _checked in options if value in scopes]
    wanted = "deny" if deny else "allow"
    for name_, value, text in parser.buttons:
        if wanted in (value.lower(), text.lower()) and name_:
            data[name_] = [value]
            break
    action = parser.action or _path(authorize_url)
    response = client.post(_path(action) if action.startswith("http") else action, data)
    assert response.status_code in (302, 303), response.content[:500]
    return response.headers["Location"]


def round_trip(
    client: Client,
    provider: str = "github",
    *,
    email: str = "alice@example.com",
    name: str = "",
    verified: bool = True,
    scopes: list[str] | None = None,
    deny: bool = False,
    **post: object,
) -> FlowResult:
    """Begin, sign in at the sandbox, and deliver the callback; returns the callback's response."""
    begin, authorize_url = start(client, provider, **post)
    if not authorize_url:
        return FlowResult(response=begin)
    callback_url = provider_page(
        client, authorize_url, email=email, name=name, verified=verified, scopes=scopes, deny=deny
    )
    response = client.get(_path(callback_url))
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
    return FlowResult(
        response=response, authorize_url=authorize_url, callback_url=callback_url, authorize_query=query
    )


def sign_in(
    client: Client, provider: str = "github", *, email: str = "alice@example.com", **kwargs
) -> FlowResult:
    result = round_trip(client, provider, email=email, **kwargs)
    assert result.response.status_code == 302, result.response.content[:500]  # type: ignore[attr-defined]
    return result


def messages_on(client: Client, path: str = "/settings/connections/") -> list[str]:
    """The messages a person sees on the next page they open."""
    response = client.get(path)
    return [str(m) for m in response.context["messages"]] if response.context else []
