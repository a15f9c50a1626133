"""Fixtures and helpers for the OpenID Connect tests.

Two providers:

* ``fake_op``: an in-process stand-in at ``https://op.example.test`` reached through a ``requests``
  transport (no socket). It answers with the real response shapes (discovery, JWKS, token,
  UserInfo, revocation) and lets a test sign the ID token however it likes, so every rejection can
  be provoked. It records every call, so a test can assert that UserInfo was never called.
* ``oidc_provider``: the real ``oidc-provider`` npm package (``tests/oidc/provider.mjs``), started
  once per test session on a free local port, for the interoperability suite. It runs ``npm ci``
  first when ``tests/oidc/node_modules`` is missing, and fails (never skips) without Node.

``SiteSession`` drives the site and the provider's HTML forms over real HTTP with ``requests``,
as a browser would (the site runs under pytest-django's ``live_server``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from accounts.oidc import backend as oidc_backend
from accounts.oidc import config as oidc_config

OIDC_DIR = Path(__file__).resolve().parent / "oidc"

# --- the in-process fake provider -----------------------------------------------------------------

FAKE_ISSUER = "https://op.example.test"
FAKE_CLIENT_ID = "linking-site-client"
FAKE_CLIENT_SECRET = "fake-client-secret-that-is-long-enough-for-hs256"
FAKE_SUB = "248289761001"

_KEY_POOL: list[rsa.RSAPrivateKey] = []


def _rsa_key(index: int) -> rsa.RSAPrivateKey:
    """A few RSA keys made once per process (making them is the slow part)."""
    while len(_KEY_POOL) <= index:
        _KEY_POOL.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEY_POOL[index]


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    def public_jwk(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        return jwk


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def at_hash(access_token: str) -> str:
    return b64url(hashlib.sha256(access_token.encode()).digest()[:16])


@dataclass
class FakeProvider:
    """An OpenID Connect provider's network edge, with hooks to misbehave."""

    issuer: str = FAKE_ISSUER
    client_id: str = FAKE_CLIENT_ID
    client_secret: str = FAKE_CLIENT_SECRET
    sub: str = FAKE_SUB
    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey("key-1", _rsa_key(0))])
    calls: list[tuple[str, str]] = field(default_factory=list)
    authorize_query: dict[str, str] = field(default_factory=dict)
    #: (provider, claims) -> the ID token the token endpoint returns; default: signed properly.
    id_token: Callable[[FakeProvider, dict[str, Any]], str] | None = None
    #: Changes to the UserInfo answer.
    userinfo: dict[str, Any] = field(default_factory=dict)
    #: Changes to the discovery document.
    discovery_changes: dict[str, Any] = field(default_factory=dict)
    issued: list[dict[str, Any]] = field(default_factory=list)
    #: When the person signed in at the provider: ``auth_time`` in every ID token, the refreshed
    #: ones included (OpenID Connect Core 12.2 has the client check that it stays the same).
    authenticated_at: int = field(default_factory=lambda: int(time.time()) - 5)

    @property
    def signing_key(self) -> SigningKey:
        return self.keys[0]

    def discovery(self) -> dict[str, Any]:
        # The shape oidc-provider and the big hosted providers publish.
        document = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/auth",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/me",
            "jwks_uri": f"{self.issuer}/jwks",
            "revocation_endpoint": f"{self.issuer}/token/revocation",
            "introspection_endpoint": f"{self.issuer}/token/introspection",
            "response_types_supported": ["code", "id_token", "code id_token", "none"],
            "grant_types_supported": ["authorization_code", "refresh_token", "implicit"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "HS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "offline_access", "profile", "email"],
            "claims_supported": ["sub", "email", "email_verified", "name", "preferred_username", "iss"],
            "authorization_response_iss_parameter_supported": True,
        }
        document.update(self.discovery_changes)
        return {k: v for k, v in document.items() if v is not None}

    def base_claims(self, *, nonce: str | None, access_token: str) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": self.sub,
            "aud": self.client_id,
            "exp": now + 3600,
            "iat": now,
            "auth_time": self.authenticated_at,
            "at_hash": at_hash(access_token),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return claims

    def sign(
        self, claims: dict[str, Any], *, key: SigningKey | None = None, headers: dict[str, Any] | None = None
    ) -> str:
        key = key or self.signing_key
        return jwt.encode(claims, key.private, algorithm="RS256", headers={"kid": key.kid, **(headers or {})})

    def count(self, path: str) -> int:
        return sum(1 for _method, url in self.calls if urlsplit(url).path == path)

    # --- endpoints ---

    def answer(self, request: requests.PreparedRequest) -> tuple[int, dict[str, Any] | str]:
        url = urlsplit(request.url or "")
        self.calls.append((request.method or "GET", request.url or ""))
        body = parse_qs(request.body.decode() if isinstance(request.body, bytes) else (request.body or ""))
        form = {k: v[0] for k, v in body.items()}
        if url.path == "/.well-known/openid-configuration":
            return 200, self.discovery()
        if url.path == "/jwks":
            return 200, {"keys": [key.public_jwk() for key in self.keys]}
        if url.path == "/token":
            return self._token(request, form)
        if url.path == "/me":
            if not (request.headers.get("Authorization") or "").startswith("Bearer "):
                return 401, {"error": "invalid_token"}
            info = {
                "sub": self.sub,
                "email": "alice@example.com",
                "email_verified": True,
                "name": "Alice Liddell",
                "preferred_username": "alice",
            }
            info.update(self.userinfo)
            return 200, {k: v for k, v in info.items() if v is not None}
        if url.path == "/token/revocation":
            return 200, ""
        return 404, {"error": "not_found"}

    def _client_ok(self, request: requests.PreparedRequest, form: dict[str, str]) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        return request.headers.get("Authorization") == expected and "client_secret" not in form

    def _token(self, request: requests.PreparedRequest, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if not self._client_ok(request, form):
            return 401, {"error": "invalid_client"}
        access_token = "at-" + secrets.token_urlsafe(16)
        refresh_token = "rt-" + secrets.token_urlsafe(16)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            challenge = self.authorize_query.get("code_challenge", "")
            verifier = form.get("code_verifier", "")
            if (
                form.get("code") != "good-code"
                or b64url(hashlib.sha256(verifier.encode()).digest()) != challenge
            ):
                return 400, {"error": "invalid_grant"}
            claims = self.base_claims(nonce=self.authorize_query.get("nonce"), access_token=access_token)
        elif grant == "refresh_token":
            claims = self.base_claims(nonce=None, access_token=access_token)
        else:
            return 400, {"error": "unsupported_grant_type"}
        id_token = self.id_token(self, claims) if self.id_token else self.sign(claims)
        response = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "refresh_token": refresh_token,
            "id_token": id_token,
            "scope": "openid offline_access profile email",
        }
        self.issued.append(response)
        return 200, response


class _FakeAdapter(BaseAdapter):
    def __init__(self, provider: FakeProvider) -> None:
        super().__init__()
        self.provider = provider

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        status, body = self.provider.answer(request)
        content = json.dumps(body).encode() if isinstance(body, dict) else body.encode()
        response = requests.Response()
        response.status_code = status
        response.reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}.get(
            status, ""
        )
        response.headers = CaseInsensitiveDict(
            {"Content-Type": "application/json" if isinstance(body, dict) else "text/plain"}
        )
        response._content = content
        response.raw = io.BytesIO(content)
        response.encoding = "utf-8"
        response.url = request.url
        response.request = request
        response.connection = self
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def fake_op(monkeypatch) -> FakeProvider:
    """The fake provider; ``requests`` calls to its issuer reach it in-process."""
    provider = FakeProvider()
    adapter = _FakeAdapter(provider)
    original = requests.Session.get_adapter

    def get_adapter(self, url):
        if url.startswith(provider.issuer + "/"):
            return adapter
        return original(self, url)

    monkeypatch.setattr(requests.Session, "get_adapter", get_adapter)
    oidc_backend.clear_caches()
    yield provider
    oidc_backend.clear_caches()


def with_backend(settings, path: str) -> None:
    backends = [b for b in settings.AUTHENTICATION_BACKENDS if b != path]
    backends.insert(len(backends) - 1, path)  # before ModelBackend
    settings.AUTHENTICATION_BACKENDS = backends


@pytest.fixture
def fake_site(settings, fake_op) -> FakeProvider:
    """The site with its ``oidc`` backend pointed at the fake provider."""
    with_backend(settings, "accounts.oidc.backend.OpenIdConnectAuth")
    settings.SOCIAL_AUTH_OIDC_OIDC_ENDPOINT = fake_op.issuer
    settings.SOCIAL_AUTH_OIDC_KEY = fake_op.client_id
    settings.SOCIAL_AUTH_OIDC_SECRET = fake_op.client_secret
    settings.SOCIAL_AUTH_OIDC_TITLE = "Example IdP"
    return fake_op


# --- driving the site and the provider over HTTP ----------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str]]
    buttons: list[tuple[str, str, str]]  # (name, value, text)
    inputs: set[str]


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._button: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._form = Form(a.get("action", ""), (a.get("method") or "get").lower(), [], [], set())
            self.forms.append(self._form)
        elif self._form is not None and tag == "input" and a.get("name"):
            kind = a.get("type", "text").lower()
            self._form.inputs.add(a["name"])
            if kind == "submit":
                self._form.buttons.append((a["name"], a.get("value", ""), a.get("value", "")))
            elif kind not in ("checkbox", "radio") or "checked" in a:
                self._form.fields.append((a["name"], a.get("value", "on" if kind == "checkbox" else "")))
        elif self._form is not None and tag == "button":
            self._button = {"name": a.get("name", ""), "value": a.get("value", ""), "text": ""}

    def handle_data(self, data):
        if self._button is not None:
            self._button["text"] += data

    def handle_endtag(self, tag):
        if tag == "button" and self._button is not None and self._form is not None:
            self._form.buttons.append(
                (self._button["name"], self._button["value"], self._button["text"].strip())
            )
            self._button = None
        elif tag == "form":
            self._form = None


def forms_in(html: str) -> list[Form]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


class SiteSession:
    """A ``requests`` session that uses the site and the provider's pages like a person would."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    def get(self, path: str) -> requests.Response:
        return self.http.get(urljoin(self.base_url + "/", path.lstrip("/")), timeout=20)

    def submit(
        self, response: requests.Response, form: Form, extra: dict[str, str] | None = None, button=None
    ):
        data: dict[str, Any] = {}
        for name, value in form.fields:
            data.setdefault(name, []).append(value)
        for name, value in (extra or {}).items():
            data[name] = [value]
        if button is not None and button[0]:
            data[button[0]] = [button[1]]
        url = urljoin(response.url, form.action or response.url)
        if form.method == "post":
            return self.http.post(url, data=data, timeout=20)
        return self.http.get(url, params=data, timeout=20)

    def form(self, response: requests.Response, action: str) -> Form:
        for form in forms_in(response.text):
            if form.action == action:
                return form
        raise AssertionError(f"no form posting to {action} on {response.url}: {response.text[:800]}")

    def start(self, provider: str, page: str = "/") -> requests.Response:
        """Press the "Continue with"/"Connect" button of ``provider`` on ``page``."""
        response = self.get(page)
        assert response.status_code == 200, response.text[:500]
        return self.submit(response, self.form(response, f"/login/{provider}/"))

    def at_oidc_provider(self, response: requests.Response, issuer: str, *, login: str) -> requests.Response:
        """Go through oidc-provider's development login and consent pages until back at the site."""
        for _ in range(6):
            if not response.url.startswith(issuer):
                return response
            assert response.status_code == 200, (
                f"{response.status_code} at {response.url}: {response.text[:800]}"
            )
            forms = [f for f in forms_in(response.text) if f.method == "post"]
            assert forms, f"no form at {response.url}: {response.text[:800]}"
            form = forms[0]
            if "login" in form.inputs:
                response = self.submit(response, form, {"login": login, "password": "any-password"})
            else:
                response = self.submit(response, form)
        raise AssertionError(f"stuck at the provider: {response.url}")

    def sign_in_oidc(self, provider: str, issuer: str, *, login: str, page: str = "/") -> requests.Response:
        response = self.start(provider, page)
        return self.at_oidc_provider(response, issuer, login=login)

    def at_sandbox(self, response: requests.Response, *, email: str) -> requests.Response:
        """Fill the sandbox provider's sign-in form and press Allow."""
        assert "/sandbox/" in response.url, response.url
        form = next(f for f in forms_in(response.text) if f.method == "post")
        allow = next(b for b in form.buttons if b[1] == "allow")
        return self.submit(
            response, form, {"email": email, "name": email.split("@")[0].title()}, button=allow
        )

    def sign_out(self) -> None:
        page = self.get("/settings/connections/")
        response = self.submit(page, self.form(page, "/logout/"))
        assert response.status_code == 200

    def disconnect(self, identity_id: int) -> requests.Response:
        page = self.get(f"/settings/connections/{identity_id}/disconnect/")
        assert page.status_code == 200, page.text[:500]
        form = next(f for f in forms_in(page.text) if f.method == "post" and f.action == "")
        return self.submit(page, form)


# --- the real provider: oidc-provider under Node ------------------------------------------------------


class NodeProvider:
    """A running ``tests/oidc/provider.mjs``; ``clients`` maps backend name -> (client id, secret)."""

    def __init__(self, process: subprocess.Popen, issuer: str, admin_token: str, log: Path, clients: dict):
        self.process = process
        self.issuer = issuer
        self.admin_token = admin_token
        self.log = log
        self.clients = clients

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(
            method,
            f"{self.issuer}/admin/{path}",
            json=body or {},
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )
        assert response.status_code == 200, f"{response.status_code}: {response.text}\n{self.log_tail()}"
        return response.json()

    def rotate_keys(self, *, drop_old: bool = False) -> list[str]:
        return self.admin("POST", "rotate-keys", {"drop_old": drop_old})["kids"]

    def signing_kids(self) -> list[str]:
        return self.admin("GET", "keys")["kids"]

    def set_access_token_ttl(self, seconds: int) -> None:
        self.admin("POST", "access-token-ttl", {"seconds": seconds})

    def discovery(self) -> dict:
        return requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10).json()

    def introspect(self, token: str, *, backend: str = "oidc", hint: str | None = None) -> dict:
        client_id, secret = self.clients[backend]
        data = {"token": token}
        if hint:
            data["token_type_hint"] = hint
        response = requests.post(
            self.discovery()["introspection_endpoint"], data=data, auth=(client_id, secret), timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()

    def refresh(self, refresh_token: str, *, backend: str = "oidc") -> requests.Response:
        client_id, secret = self.clients[backend]
        return requests.post(
            self.discovery()["token_endpoint"],
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client_id, secret),
            timeout=10,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.unlink(missing_ok=True)


def ensure_node_packages() -> str:
    """The ``node`` executable, after ``npm ci`` if ``tests/oidc/node_modules`` is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "Node.js is not installed: the OpenID Connect interop tests run the oidc-provider npm "
            "package. Install Node 20+ and npm (apt-get install nodejs npm).",
            pytrace=False,
        )
    installed = OIDC_DIR / "node_modules" / ".package-lock.json"
    if (
        not installed.is_file()
        or installed.stat().st_mtime < (OIDC_DIR / "package-lock.json").stat().st_mtime
    ):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is not installed: it installs tests/oidc's packages (npm ci).", pytrace=False)
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=OIDC_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"npm ci in {OIDC_DIR} failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    return node


def start_node_provider(clients: dict[str, tuple[str, str, list[str]]]) -> NodeProvider:
    """Start the provider with ``clients`` (backend name -> (client id, secret, redirect URIs))."""
    node = ensure_node_packages()
    admin_token = secrets.token_urlsafe(24)
    log_fd, log_name = tempfile.mkstemp(prefix="oidc-provider-", suffix=".log")
    log = Path(log_name)
    env = {
        **os.environ,
        "OIDC_TEST_ADMIN_TOKEN": admin_token,
        "OIDC_TEST_CLIENTS": json.dumps(
            [
                {"client_id": cid, "client_secret": secret, "redirect_uris": uris}
                for cid, secret, uris in clients.values()
            ]
        ),
        "OIDC_TEST_PORT": "0",
        "OIDC_TEST_EXIT_WITH_STDIN": "1",  # dies with this process, even if it is killed
        "NODE_ENV": "test",
    }
    process = subprocess.Popen(
        [node, "provider.mjs"],
        cwd=OIDC_DIR,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log_fd,
        text=True,
    )
    os.close(log_fd)
    first_line: list[str] = []
    reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=30)
    if not first_line or not first_line[0].strip():
        process.kill()
        pytest.fail(f"oidc-provider did not start:\n{log.read_text(errors='replace')[-3000:]}", pytrace=False)
    issuer = json.loads(first_line[0])["issuer"]
    # Keep reading stdout so the provider can never block on a full pipe.
    threading.Thread(target=lambda: [None for _line in process.stdout], daemon=True).start()
    return NodeProvider(
        process,
        issuer,
        admin_token,
        log,
        {name: (cid, secret) for name, (cid, secret, _uris) in clients.items()},
    )


NAMED_PROVIDER = "acme"


@pytest.fixture(scope="session")
def oidc_provider(live_server) -> NodeProvider:
    """oidc-provider with two clients: the site's ``oidc`` backend and the named provider ``acme``."""
    base = live_server.url
    clients = {
        "oidc": ("linking-site", secrets.token_urlsafe(32), [f"{base}/complete/oidc/"]),
        NAMED_PROVIDER: (
            "linking-site-acme",
            secrets.token_urlsafe(32),
            [f"{base}/complete/{NAMED_PROVIDER}/"],
        ),
    }
    provider = start_node_provider(clients)
    yield provider
    provider.stop()


@pytest.fixture
def oidc_site(settings, oidc_provider, monkeypatch) -> NodeProvider:
    """The site configured for the real provider: ``oidc`` (simple settings) and ``acme`` (named)."""
    with_backend(settings, "accounts.oidc.backend.OpenIdConnectAuth")
    client_id, secret = oidc_provider.clients["oidc"]
    settings.SOCIAL_AUTH_OIDC_OIDC_ENDPOINT = oidc_provider.issuer
    settings.SOCIAL_AUTH_OIDC_KEY = client_id
    settings.SOCIAL_AUTH_OIDC_SECRET = secret
    settings.SOCIAL_AUTH_OIDC_TITLE = "Node IdP"
    named = oidc_config.named_provider_settings(
        {
            "OIDC_PROVIDERS": NAMED_PROVIDER,
            "OIDC_ACME_ENDPOINT": oidc_provider.issuer,
            "OIDC_ACME_KEY": oidc_provider.clients[NAMED_PROVIDER][0],
            "OIDC_ACME_SECRET": oidc_provider.clients[NAMED_PROVIDER][1],
            "OIDC_ACME_TITLE": "Acme Corp",
            "OIDC_ACME_TRUST_EMAIL_VERIFIED": "on",
        }
    )
    for name, value in named.settings.items():
        setattr(settings, name, value)
    for path in named.backends:
        with_backend(settings, path)
    settings.OIDC_ALLOW_INSECURE_ISSUER = True
    oidc_backend.clear_caches()
    yield oidc_provider
    oidc_provider.set_access_token_ttl(300)
    oidc_backend.clear_caches()
