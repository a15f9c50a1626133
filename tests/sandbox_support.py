"""Route ``requests`` calls for ``http://testserver/`` into Django, in-process, for tests.

social-auth's backends talk to providers with ``requests``. In tests the sandbox stands in for the
providers, and it is served by the very Django that runs the test, so a backend's server-to-server
call (code exchange, refresh, userinfo, revocation) has to reach ``django.test.Client`` instead of
the network. Everything that is not ``http://testserver`` still goes out as usual.

Use ``install_testserver_transport(monkeypatch)`` or the ``testserver_transport`` fixture (import it
into a ``conftest.py``).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.test import Client
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPResponse
from urllib3._collections import HTTPHeaderDict

TESTSERVER_HOST = "testserver"

# Hop-by-hop or transport headers that the WSGI request gets from elsewhere (or not at all).
_SKIPPED_HEADERS = {"host", "content-type", "content-length", "connection", "transfer-encoding"}


def is_testserver_url(url: str) -> bool:
    """True for ``http://testserver`` URLs (any path), the only ones the transport intercepts."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname == TESTSERVER_HOST and port in (None, 80)


class DjangoTestserverAdapter(BaseAdapter):
    """A ``requests`` transport that answers from ``django.test.Client`` instead of a socket.

    Each request gets a fresh client (no cookies carried over), like a server-to-server call.
    The adapter records every request it answered in ``calls`` as ``(method, url)``, so a test
    can check what a backend sent. A view's exception propagates to the test unless
    ``raise_request_exception`` is false, in which case it becomes a 500 like a real server's (the
    outer test client, if any, may still re-raise it: Django's client records every exception
    raised while its request runs). A call that takes longer than the caller's read timeout raises
    ``requests.exceptions.ReadTimeout`` once the view has answered.
    """

    def __init__(self, *, raise_request_exception: bool = True) -> None:
        super().__init__()
        self.raise_request_exception = raise_request_exception
        self.calls: list[tuple[str, str]] = []

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        url = request.url or ""
        method = (request.method or "GET").upper()
        self.calls.append((method, url))
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        headers = {
            name: value
            for name, value in (request.headers or {}).items()
            if name.lower() not in _SKIPPED_HEADERS
        }
        headers["Host"] = parts.netloc
        content_type = (request.headers or {}).get("Content-Type", "application/octet-stream")
        client = Client(raise_request_exception=self.raise_request_exception)
        started = time.monotonic()
        django_response = client.generic(
            method, path, data=_body_bytes(request.body), content_type=content_type, headers=headers
        )
        elapsed = time.monotonic() - started
        # Honour the caller's read timeout after the fact, so a slow sandbox (failure mode "slow")
        # times a backend out as a slow provider would. The view's side effects stay, as they would.
        read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
        if read_timeout is not None and elapsed > float(read_timeout):
            raise requests.exceptions.ReadTimeout(
                f"testserver did not answer within {read_timeout} s", request=request
            )
        response = self.build_response(request, django_response)
        response.elapsed = timedelta(seconds=elapsed)
        return response

    def build_response(self, request: requests.PreparedRequest, django_response: Any) -> requests.Response:
        """A real ``requests.Response`` carrying the Django response's status, headers and body."""
        if getattr(django_response, "streaming", False):
            content = b"".join(django_response.streaming_content)
        else:
            content = django_response.content
        response = requests.Response()
        response.status_code = django_response.status_code
        response.reason = django_response.reason_phrase
        response.headers = CaseInsensitiveDict(dict(django_response.items()))
        for cookie in django_response.cookies.values():
            response.cookies.set(cookie.key, cookie.value)
        response.encoding = get_encoding_from_headers(response.headers)
        response._content = content
        response._content_consumed = True
        # A urllib3 response, as a real transport gives: clients read headers and version from it.
        response.raw = HTTPResponse(
            body=io.BytesIO(content),
            headers=HTTPHeaderDict(dict(django_response.items())),
            status=django_response.status_code,
            version=11,
            preload_content=False,
        )
        response.url = request.url or ""
        response.request = request
        response.connection = self
        response.elapsed = timedelta(0)
        return response

    def close(self) -> None:
        """Nothing to release: no sockets are ever opened."""


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, Iterable):
        return b"".join(chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk) for chunk in body)
    raise TypeError(f"Cannot send a request body of type {type(body).__name__} to the test server.")


def install_testserver_transport(
    monkeypatch: pytest.MonkeyPatch, *, raise_request_exception: bool = True
) -> DjangoTestserverAdapter:
    """Send every ``requests`` call for ``http://testserver/`` through Django for this test.

    Patches ``requests.Session.get_adapter`` (which ``requests.get``/``post``/``request`` use too), so
    only testserver URLs are intercepted; ``monkeypatch`` undoes it when the test ends.
    """
    adapter = DjangoTestserverAdapter(raise_request_exception=raise_request_exception)
    original_get_adapter = requests.Session.get_adapter

    def get_adapter(self: requests.Session, url: str) -> BaseAdapter:
        if is_testserver_url(url):
            return adapter
        return original_get_adapter(self, url)

    monkeypatch.setattr(requests.Session, "get_adapter", get_adapter)
    return adapter


@pytest.fixture
def testserver_transport(monkeypatch: pytest.MonkeyPatch) -> DjangoTestserverAdapter:
    """``requests`` calls for ``http://testserver/`` reach this test's Django in-process."""
    return install_testserver_transport(monkeypatch)
