"""The parts of the example MCP server that talk to linking_site and to the providers' APIs.

linking_site is the server's authorization server: the server finds its endpoints in the site's
RFC 8414 metadata, checks every bearer token by RFC 7662 introspection (the token must be active,
issued for this server's own resource and unexpired), and turns the caller's site token into a
GitHub or Google token by RFC 8693 token exchange. Tokens never appear in a log line: each call to
the site or a provider is logged as its method, path and status only.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
from mcp.server.auth.provider import AccessToken

log = logging.getLogger("mcp_server")

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
#: What a person can fix by linking an account (or granting more) at the answer's ``authorize_url``.
ACTIONABLE = {"connection_required", "insufficient_scope", "reauthorization_required"}
PROJECT_ENV = Path(__file__).resolve().parent.parent / ".env"
REAL_GITHUB_API = "https://api.github.com"
REAL_GOOGLE_USERINFO = "https://openidconnect.googleapis.com/v1/userinfo"
TIMEOUT = httpx2.Timeout(15.0, connect=5.0)


class SiteUnreachable(Exception):
    """linking_site did not answer (or answered something that is not its metadata)."""


class CredentialsRefused(SiteUnreachable):
    """The site refused this server's own client credentials: no token could be checked."""


class PersonMustAct(Exception):
    """The site needs the person to link an account or approve more access at ``url``."""

    def __init__(self, *, url: str, request_id: str, message: str) -> None:
        self.url = url
        self.request_id = request_id
        self.message = message
        super().__init__(message)


class ToolFailure(Exception):
    """Anything else that stops a tool: its text is what the MCP client shows."""


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of the project's ``.env`` (the file ``make run`` writes), quotes removed."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.removeprefix("export ").split("=", 1)
        values[name.strip()] = value.strip().strip("'\"")
    return values


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "on", "true", "yes"}


@dataclass(frozen=True)
class Config:
    site_url: str
    client_id: str
    client_secret: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 8765
    #: This server's public /mcp URL: the RFC 8707 resource its tokens must be issued for.
    resource_url: str = ""
    github_api_url: str = REAL_GITHUB_API
    google_userinfo_url: str = REAL_GOOGLE_USERINFO

    @property
    def metadata_path(self) -> str:
        """RFC 9728 section 3.1: the well-known path with the resource's path appended."""
        return "/.well-known/oauth-protected-resource" + urlsplit(self.resource_url).path.rstrip("/")

    @property
    def metadata_url(self) -> str:
        parts = urlsplit(self.resource_url)
        return f"{parts.scheme}://{parts.netloc}{self.metadata_path}"


def load_config(*, port: int | None = None, environ: dict[str, str] | None = None) -> Config:
    """Settings from the environment, then the project's ``.env`` (the environment wins).

    The provider APIs default to the site's sandbox when the site runs it (``SANDBOX_PROVIDERS``,
    on by default with ``DEBUG``), else to the real hosts; ``MCP_GITHUB_API_URL`` and
    ``MCP_GOOGLE_USERINFO_URL`` override both.
    """
    environ = dict(os.environ if environ is None else environ)
    dotenv = {} if environ.get("LINKING_SITE_IGNORE_DOTENV") == "1" else read_dotenv(PROJECT_ENV)
    values = {**dotenv, **environ}
    site = values.get("SITE_URL") or f"http://127.0.0.1:{values.get('PORT', '8000')}"
    site = site.rstrip("/")
    port = port if port is not None else int(values.get("MCP_PORT") or 8765)
    host = values.get("MCP_HOST") or "127.0.0.1"
    sandbox_setting = values.get("SANDBOX_PROVIDERS")
    sandbox = _flag(sandbox_setting) if sandbox_setting is not None else _flag(values.get("DEBUG"))
    github = f"{site}/sandbox/github/api" if sandbox else REAL_GITHUB_API
    google = f"{site}/sandbox/google/userinfo" if sandbox else REAL_GOOGLE_USERINFO
    return Config(
        site_url=site,
        client_id=values.get("MCP_CLIENT_ID", ""),
        client_secret=values.get("MCP_CLIENT_SECRET", ""),
        host=host,
        port=port,
        resource_url=(values.get("MCP_RESOURCE_URL") or f"http://{host}:{port}/mcp").rstrip("/"),
        github_api_url=(values.get("MCP_GITHUB_API_URL") or github).rstrip("/"),
        google_userinfo_url=values.get("MCP_GOOGLE_USERINFO_URL") or google,
    )


class Site:
    """linking_site as this resource server sees it: metadata, introspection, token exchange.

    ``transport`` is for tests: an ``httpx2`` transport standing in for the network.
    """

    def __init__(self, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._transport = transport
        self._metadata: dict[str, Any] | None = None

    def client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            transport=self._transport, timeout=TIMEOUT, event_hooks={"response": [_log_response]}
        )

    @property
    def _credentials(self) -> httpx2.BasicAuth:
        # RFC 6749 section 2.3.1: HTTP Basic with the form-urlencoded id and secret.
        return httpx2.BasicAuth(self.config.client_id, self.config.client_secret)

    async def metadata(self) -> dict[str, Any]:
        """The site's RFC 8414 metadata, fetched once; its issuer must be the configured site."""
        if self._metadata is None:
            url = f"{self.config.site_url}/.well-known/oauth-authorization-server"
            try:
                async with self.client() as http:
                    answer = await http.get(url, headers={"Accept": "application/json"})
                document = answer.json() if answer.status_code == 200 else None
            except (httpx2.HTTPError, ValueError) as error:
                raise SiteUnreachable(f"no answer at {url} ({error})") from error
            if not isinstance(document, dict) or document.get("issuer") != self.config.site_url:
                raise SiteUnreachable(f"{url} is not linking_site's metadata (HTTP {answer.status_code})")
            self._metadata = document
        return self._metadata

    async def start(self) -> None:
        """Fail early, in one line, on what would otherwise make every client's token look bad:
        the site unreachable, or refusing this server's credentials (a dummy introspection)."""
        endpoint = (await self.metadata())["introspection_endpoint"]
        try:
            async with self.client() as http:
                answer = await http.post(endpoint, data={"token": "startup-check"}, auth=self._credentials)
        except httpx2.HTTPError as error:
            raise SiteUnreachable(f"no answer at {endpoint} ({error})") from error
        if answer.status_code in (400, 401, 403):
            raise CredentialsRefused(f"HTTP {answer.status_code} at {endpoint}")

    async def introspect(self, token: str) -> AccessToken | None:
        """The token's facts if the site says it is active, for this resource, and unexpired."""
        endpoint = (await self.metadata())["introspection_endpoint"]
        try:
            async with self.client() as http:
                answer = await http.post(
                    endpoint,
                    data={"token": token, "token_type_hint": "access_token"},
                    auth=self._credentials,
                    headers={"Accept": "application/json"},
                )
            facts = answer.json() if answer.status_code == 200 else {}
        except (httpx2.HTTPError, ValueError):
            log.warning("introspection failed: linking_site did not answer")
            return None
        if not isinstance(facts, dict) or facts.get("active") is not True:
            return None
        audience = facts.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.config.resource_url not in [str(a).rstrip("/") for a in audiences if a]:
            log.warning("refused a token issued for another audience")
            return None
        expires_at = facts.get("exp")
        if not isinstance(expires_at, int) or expires_at <= time.time():
            return None
        return AccessToken(
            token=token,
            client_id=str(facts.get("client_id", "")),
            scopes=str(facts.get("scope", "")).split(),
            expires_at=expires_at,
            resource=self.config.resource_url,
            subject=str(facts.get("sub", "")) or None,
            claims={"iss": self.config.site_url},
        )

    async def exchange(self, subject_token: str, *, connection: str) -> str:
        """RFC 8693: the caller's site token for a provider access token for the same person."""
        endpoint = (await self.metadata())["token_endpoint"]
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "connection": connection,
        }
        try:
            async with self.client() as http:
                answer = await http.post(
                    endpoint, data=form, auth=self._credentials, headers={"Accept": "application/json"}
                )
            body = answer.json()
        except httpx2.HTTPError as error:
            raise ToolFailure(f"linking_site at {self.config.site_url} did not answer; try again.") from error
        except ValueError as error:
            raise ToolFailure(f"linking_site answered HTTP {answer.status_code} without JSON.") from error
        if answer.status_code == 200 and isinstance(body, dict) and body.get("access_token"):
            return str(body["access_token"])
        raise _exchange_failure(body if isinstance(body, dict) else {}, answer.status_code)

    async def provider_json(self, url: str, token: str, *, provider: str) -> dict[str, Any]:
        """GET a provider API with the exchanged token; a clear failure for anything but JSON 200."""
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            async with self.client() as http:
                answer = await http.get(url, headers=headers)
            body = answer.json()
        except httpx2.HTTPError as error:
            raise ToolFailure(f"{provider} did not answer; try again.") from error
        except ValueError as error:
            raise ToolFailure(f"{provider} answered HTTP {answer.status_code} without JSON.") from error
        if answer.status_code != 200 or not isinstance(body, dict):
            raise ToolFailure(f"{provider} refused the request (HTTP {answer.status_code}).")
        return body


def _exchange_failure(body: dict[str, Any], status: int) -> Exception:
    """The site's error as this server answers it: a link for the person, or a plain failure.

    The site names its own code in ``error`` (the agent API's shape) or, under an RFC 6749 code,
    in ``linking_site_error``; either way an ``authorize_url`` means a person can fix it.
    """
    code = str(body.get("linking_site_error") or body.get("error") or "")
    description = str(body.get("error_description") or "")
    request = body.get("connect_request")
    request_id = str(request.get("id") if isinstance(request, dict) else request or "")
    url = body.get("authorize_url") or (request.get("authorize_url") if isinstance(request, dict) else None)
    if url and (code in ACTIONABLE or request_id):
        message = description or "linking_site needs you to connect an account."
        return PersonMustAct(url=str(url), request_id=request_id or code, message=message)
    reason = f"{description} ({code})" if description else code or "no reason given"
    return ToolFailure(f"linking_site refused the token exchange (HTTP {status}): {reason}")


async def _log_response(response: httpx2.Response) -> None:
    """One line per outbound call: method, host and path, status. Never a query, header or body."""
    request = response.request
    log.info("%s %s%s -> %s", request.method, request.url.host, request.url.path, response.status_code)
