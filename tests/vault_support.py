"""Helpers for the vault's tests (test support code: nothing here runs in the site).

They read tokens back out of the vault the way only a test may, move expiry, and make the
sandbox's transport fail or time out like a network would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import requests
from django.db import connection
from django.utils import timezone
from social_django.models import UserSocialAuth

from vault.models import TokenSet

from .sandbox_support import DjangoTestserverAdapter


def token_set_of(identity: UserSocialAuth) -> TokenSet:
    return TokenSet.objects.get(identity=identity)


def stored_tokens(token_set: TokenSet) -> tuple[str, str]:
    """(access, refresh) as stored, decrypted: only tests look at plaintext like this."""
    token_set.refresh_from_db()
    return token_set.read_access_token(), token_set.read_refresh_token()


def expire(token_set: TokenSet, *, seconds_ago: int = 5) -> None:
    """Make the stored access token expired, as if its lifetime had passed (a negative
    ``seconds_ago``: as if it had that long to live). Its issue time moves along, so the vault
    still sees the provider's real lifetime (``vault.stored.needs_refresh`` counts on it)."""
    row = TokenSet.objects.get(pk=token_set.pk)
    expires_at = timezone.now() - timedelta(seconds=seconds_ago)
    issued_at = row.issued_at
    if issued_at is not None and row.expires_at is not None:
        issued_at = expires_at - (row.expires_at - row.issued_at)
    TokenSet.objects.filter(pk=token_set.pk).update(expires_at=expires_at, issued_at=issued_at)


def let_pause_pass(token_set: TokenSet) -> None:
    """As if the outage pause (``retry_not_before``) had run out."""
    TokenSet.objects.filter(pk=token_set.pk).update(retry_not_before=timezone.now() - timedelta(seconds=1))


def patch_transport(
    monkeypatch, *, when: Callable[[str, str], bool], answer: Callable[[Any, Any], Any]
) -> list:
    """Intercept ``requests`` calls matching ``when(method, url)``; ``answer(adapter, request)`` replies.

    Works on top of the sandbox transport (``tests.sandbox_support``); the list it returns records the
    intercepted ``(method, url)`` pairs.
    """
    seen: list[tuple[str, str]] = []
    original_send = DjangoTestserverAdapter.send

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        if when(request.method or "", request.url or ""):
            seen.append((request.method, request.url))
            return answer(self, request, timeout=timeout, original=original_send)
        return original_send(
            self, request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )

    monkeypatch.setattr(DjangoTestserverAdapter, "send", send)
    return seen


def http_status(status: int, body: bytes = b'{"error": "server_error"}', headers: dict | None = None):
    """An ``answer`` for ``patch_transport``: a plain HTTP error response."""

    def answer(adapter, request, **kwargs):
        response = requests.Response()
        response.status_code = status
        response._content = body
        response.headers.update({"Content-Type": "application/json", **(headers or {})})
        response.url = request.url
        response.request = request
        return response

    return answer


def connection_error(adapter, request, **kwargs):
    raise requests.exceptions.ConnectionError("connection refused (simulated)")


def timing_out(adapter, request, *, timeout=None, original=None, **kwargs):
    """Serve the request, then behave as ``requests`` does when it took longer than ``timeout``."""
    started = time.monotonic()
    response = original(adapter, request, timeout=timeout)
    limit = timeout[1] if isinstance(timeout, tuple) else timeout
    if limit is not None and time.monotonic() - started > float(limit):
        raise requests.exceptions.ReadTimeout("read timed out (simulated)")
    return response


def run_in_threads(count: int, target: Callable[[], Any]) -> tuple[list[Any], list[BaseException]]:
    """Start ``count`` threads together on ``target``; (results, exceptions). Closes their connections."""
    barrier = threading.Barrier(count)
    results: list[Any] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            value = target()
        except BaseException as error:  # reported to the test
            with lock:
                failures.append(error)
        else:
            with lock:
                results.append(value)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results, failures
