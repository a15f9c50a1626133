"""What makes ``vault_refresh`` fast at 100,000 due sets (issue 17.4) without weakening it: one
kept-alive provider session per thread (no cookie carried from one person's refresh to the
next, no token in the logs, a dropped connection replaced or failed cleanly), the ownership
check read from the rows the refresh has locked, and a sandbox token endpoint that counts with
one statement."""

from __future__ import annotations

import gc
import io
import json
import logging
import threading
import time
import weakref
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from social_core.exceptions import AuthConfigurationError, AuthProviderError

from accounts.models import User
from sandbox import state
from vault import errors, provider_calls, refresh_selection
from vault.models import TokenSet
from vault.provider_calls import RefreshContext
from vault.refresh import refresh

from .flows import sign_in
from .vault_support import expire, patch_transport, stored_tokens

TOKEN_PATH = "/login/oauth/access_token"
STALL_SECONDS = 1.0


class _Backend:
    """What ``provider_calls._send`` asks of a social-core backend."""

    SEND_USER_AGENT = True
    name = "github"

    def setting(self, name, default=None):
        return {"USER_AGENT": "linking-site-test"}.get(name, default)


class _Provider:
    """A token endpoint on a real socket (HTTP/1.1, keep-alive) that records which connection
    each request came on. ``mode``: ``answer``; ``close_after`` (answers, then closes the
    connection without saying so); ``hang_up`` (reads the request, closes without an answer);
    ``stall`` (reads the request, answers after the caller's timeout)."""

    def __init__(self) -> None:
        self.mode = "answer"
        self.seen: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                provider.seen.append(
                    {"peer": self.client_address[1], "cookie": self.headers.get("Cookie"), "body": body}
                )
                if provider.mode == "hang_up":
                    self.close_connection = True
                    return
                if provider.mode == "stall":
                    time.sleep(STALL_SECONDS)
                payload = json.dumps({"access_token": "gho_" + "a" * 36, "token_type": "bearer"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Set-Cookie", "provider_session=someone-elses; Path=/")
                self.end_headers()
                self.wfile.write(payload)
                if provider.mode == "close_after":
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}{TOKEN_PATH}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider():
    provider_calls.close_http_session()
    server = _Provider()
    yield server
    provider_calls.close_http_session()
    server.close()


def _post(url: str, refresh_token: str, *, timeout: float = 5):
    return provider_calls._send(
        _Backend(),
        url,
        method="POST",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        timeout=timeout,
        stage="refresh",
    )


def _expired_token_set(client) -> RefreshContext:
    """A signed-in person's expired GitHub token set, as ``vault_refresh`` would refresh it."""
    sign_in(client, "github", email="person@example.com")
    token_set = TokenSet.objects.get()
    expire(token_set)
    return RefreshContext(
        token_set_id=token_set.pk, identity_id=token_set.identity_id, owner=User.objects.get(), min_ttl=60
    )


def test_calls_from_one_thread_share_one_kept_alive_connection_and_no_cookie(provider, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = [f"ghr_secret_{n}_" + "x" * 30 for n in range(3)]
    for secret in secrets:
        assert _post(provider.url, secret).json()["token_type"] == "bearer"
    assert len({request["peer"] for request in provider.seen}) == 1  # one connection, kept alive
    # The provider set a cookie on every answer; none is ever sent back (the session is shared by
    # every person's refreshes), and nothing logged (urllib3 included) holds a token.
    assert [request["cookie"] for request in provider.seen] == [None, None, None]
    assert not provider_calls.http_session().cookies
    for secret in secrets:
        assert secret not in caplog.text
    assert "gho_" not in caplog.text


def test_each_thread_has_its_own_session(provider):
    sessions = []

    def in_thread():
        sessions.append(provider_calls.http_session())
        _post(provider.url, "ghr_thread_" + "y" * 30)
        provider_calls.close_http_session()

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert sessions[0] is not provider_calls.http_session()


def test_a_connection_the_provider_closed_is_replaced(provider):
    provider.mode = "close_after"
    _post(provider.url, "ghr_first_" + "z" * 30)
    # The kept-alive connection is closed by now; the next call opens a new one and succeeds.
    assert _post(provider.url, "ghr_second_" + "z" * 30).status_code == 200
    assert len({request["peer"] for request in provider.seen}) == 2


def test_a_connection_dropped_without_an_answer_fails_cleanly_and_is_not_reused(provider, caplog):
    caplog.set_level(logging.DEBUG)
    _post(provider.url, "ghr_warm_" + "w" * 30)
    before = provider_calls.http_session()
    provider.mode = "hang_up"
    secret = "ghr_dropped_" + "v" * 30
    with pytest.raises(AuthProviderError) as raised:
        _post(provider.url, secret)
    assert raised.value.code == "connection_failed"  # an outage: call_provider retries it
    assert provider.url not in str(raised.value.__cause__)  # social-core's URL redaction, kept
    assert provider_calls.http_session() is not before  # the broken connection is not reused
    assert secret not in caplog.text
    provider.mode = "answer"
    assert _post(provider.url, "ghr_after_" + "u" * 30).status_code == 200


def test_a_provider_that_answers_too_late_is_a_timeout_and_its_connection_is_dropped(provider):
    _post(provider.url, "ghr_warm_" + "t" * 30)
    before = provider_calls.http_session()
    provider.mode = "stall"
    with pytest.raises(AuthProviderError) as raised:
        _post(provider.url, "ghr_slow_" + "s" * 30, timeout=STALL_SECONDS / 4)
    assert raised.value.code == "timeout"
    assert provider.url not in str(raised.value.__cause__)
    assert provider_calls.http_session() is not before  # its late answer is never read as the next one's


def test_a_malformed_provider_url_is_a_setting_error_and_keeps_the_connection(provider):
    _post(provider.url, "ghr_warm_" + "m" * 30)
    before = provider_calls.http_session()
    with pytest.raises(AuthConfigurationError) as raised:
        _post("http://", "ghr_nowhere_" + "n" * 30)
    assert (raised.value.code, raised.value.parameter) == ("invalid_setting", "url")
    assert provider_calls.http_session() is before


@pytest.mark.django_db(transaction=True)
def test_vault_refresh_sends_no_cookie_from_one_persons_refresh_with_the_next(client, monkeypatch):
    for index in range(3):
        client.logout()
        sign_in(client, "github", email=f"person{index}@example.com")
    for token_set in TokenSet.objects.all():
        expire(token_set)
    cookies = []

    def with_cookie(adapter, request, *, original, **kwargs):
        cookies.append(request.headers.get("Cookie"))
        response = original(adapter, request, **kwargs)
        response.headers["Set-Cookie"] = "provider_session=abc; Path=/"
        return response

    patch_transport(monkeypatch, when=lambda method, url: url.endswith(TOKEN_PATH), answer=with_cookie)
    out = io.StringIO()
    call_command("vault_refresh", "--workers", "1", "--no-warnings", stdout=out, stderr=io.StringIO())
    assert "3 due, 3 refreshed" in out.getvalue()
    assert cookies == [None, None, None]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", ["deactivated", "merged"])
def test_a_refresh_for_a_profile_no_longer_live_is_refused(client, change):
    """The ownership check (read from the locked rows on PostgreSQL, queried on SQLite) still
    refuses a deactivated or merged-away profile's token set, and calls nobody."""
    sign_in(client, "github", email="person@example.com")
    token_set = TokenSet.objects.get()
    expire(token_set)
    owner = User.objects.get()
    before = stored_tokens(token_set)
    if change == "deactivated":
        User.objects.filter(pk=owner.pk).update(is_active=False)
    else:
        other = User.objects.create(username="other")
        User.objects.filter(pk=owner.pk).update(is_active=False, merged_into=other)
    state.reset("github")
    with pytest.raises(errors.ConnectionRequired):
        refresh(
            RefreshContext(
                token_set_id=token_set.pk, identity_id=token_set.identity_id, owner=owner, min_ttl=60
            )
        )
    assert state.refresh_count("github") == 0
    assert stored_tokens(token_set) == before


@pytest.mark.django_db(transaction=True)
def test_a_refresh_under_the_row_lock_asks_nothing_twice(client):
    ctx = _expired_token_set(client)
    with CaptureQueriesContext(connection) as captured:
        assert refresh(ctx)[1] is True
    site = [q["sql"] for q in captured.captured_queries if "sandbox_" not in q["sql"]]
    if connection.vendor == "postgresql":
        # The owner and identity are locked: whether they are still live is read from those rows.
        assert not [sql for sql in site if sql.startswith("SELECT 1 AS")], site


@pytest.mark.django_db
def test_the_sandbox_token_endpoint_counts_and_reads_its_mode_in_three_statements(client):
    ctx = _expired_token_set(client)
    state.reset("github")
    with CaptureQueriesContext(connection) as captured:
        refresh(ctx)
    counted = [q["sql"] for q in captured.captured_queries if "sandbox_providerstate" in q["sql"]]
    assert len(counted) == 3, counted  # requests + 1, the mode, successes + 1
    assert state.refresh_count("github") == 1
    assert state.refresh_count("github", successful=True) == 1


def test_a_backend_with_its_own_request_method_keeps_it():
    """Backends that override social-core's ``request`` (none of this site's) are left to it,
    with the deadline still applied; the others go through the thread's session."""
    calls = []

    class Own(_Backend):
        def request(self, url, **kwargs):
            calls.append((url, kwargs["timeout"]))
            return "answered"

    backend = Own()
    provider_calls._bound_backend(backend, deadline=time.monotonic() + 3, scope=())
    assert backend.request("http://provider.invalid/token", method="POST") == "answered"
    assert calls[0][0] == "http://provider.invalid/token" and calls[0][1] <= 3


@pytest.mark.django_db
def test_a_selection_page_is_freed_as_soon_as_it_is_dropped(client, monkeypatch):
    """Memory flat at 100,000 due sets: a page's rows (which ``select_related`` links both ways)
    go with their page, not at the cycle collector's next full pass."""
    for index in range(5):
        client.logout()
        sign_in(client, "github", email=f"person{index}@example.com")
    for token_set in TokenSet.objects.all():
        expire(token_set)
    monkeypatch.setattr(refresh_selection, "SELECTION_PAGE", 2)
    horizon = timezone.now() + timedelta(seconds=600)
    refs = []
    gc.disable()
    try:
        for row in refresh_selection.due_in_pages(horizon):
            assert row.identity.user.pk and row.identity.provider == "github"  # handed on whole
            refs.append(weakref.ref(row))
        del row
        assert len(refs) == 5
        assert [ref() for ref in refs[:4]] == [None] * 4  # the two full pages: freed, no collector
    finally:
        gc.enable()
