"""A canary token seeded in the vault shows up nowhere but in the one API return value.

Looked for in: logs at DEBUG (SQL included), every page (connections, activity, admin list and
detail pages), error reports of exceptions raised with the token in local variables, command
output, error objects, email, and the database itself.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.apps import apps
from django.core import mail, serializers
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client, override_settings
from django.views.debug import ExceptionReporter
from social_django.models import UserSocialAuth

import vault
from activity.models import Activity
from sandbox.backends import SandboxGithubOAuth2
from vault import agents, provider_calls
from vault.capture import capture_tokens
from vault.keys import generate_key
from vault.models import TokenSet

from .leaks import cache_contents, decoded_sessions, store_canaries
from .vault_support import expire

pytestmark = pytest.mark.django_db

CANARY_ACCESS = "gho_CANARYaccess7f3e9d1c5b"
CANARY_REFRESH = "ghr_CANARYrefresh2a8c4e6f0d"
FRESH_ACCESS = "gho_CANARYfresh5d7b9a1e3c"
FRESH_REFRESH = "ghr_CANARYfreshrefresh9e1c"
SECRETS = (CANARY_ACCESS, CANARY_REFRESH, FRESH_ACCESS, FRESH_REFRESH)


def _assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a token leaked into {where}"


def _report(error: BaseException) -> str:
    """The error report Django would mail to ADMINS (or show) for this exception."""
    reporter = ExceptionReporter(None, type(error), error, error.__traceback__)
    text = reporter.get_traceback_text()
    assert "Traceback" in text and "disk full" in text  # a real report, with frames
    return text + reporter.get_traceback_html()


def test_canary_token_leaks_nowhere(
    client, staff, caplog, monkeypatch, settings, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")  # Django's own loggers stop at INFO by default
    connection.force_debug_cursor = True  # log every SQL query with its parameters
    try:
        _exercise(client, staff, caplog, monkeypatch, settings, django_capture_on_commit_callbacks)
    finally:
        connection.force_debug_cursor = False


def _exercise(client, staff, caplog, monkeypatch, settings, django_capture_on_commit_callbacks):
    monkeypatch.setattr(provider_calls, "RETRY_BACKOFF", (0.0, 0.0))
    github = UserSocialAuth.objects.get(provider="github")
    store_canaries(github, access=CANARY_ACCESS, refresh=CANARY_REFRESH)
    token_set = TokenSet.objects.get(identity=github)
    seen: list[tuple[str, str]] = []

    # The one place it may appear.
    token = vault.get_access_token(staff, "github")
    assert token.access_token == CANARY_ACCESS
    seen.append(("the token's repr", repr(token)))

    # The agent API hands it out in its answer, and nowhere else, even when the request then crashes.
    agent_key = agents.create_agent_key(user=staff, name="canary bot", providers=["github"])[1]

    def post_token(api: Client):
        return api.post(
            "/api/v1/token",
            json.dumps({"connection": "github"}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {agent_key}",
        )

    assert post_token(Client()).json()["access_token"] == CANARY_ACCESS

    def disk_full(**kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(agents, "record_token_issued", disk_full)
        with pytest.raises(RuntimeError) as crashed:
            post_token(Client(raise_request_exception=True))
        seen.append(("an error report from the token API", _report(crashed.value)))

    # Pages.
    paths = [
        "/settings/connections/",
        "/settings/activity/",
        "/admin/vault/tokenset/",
        f"/admin/vault/tokenset/{token_set.pk}/change/",
        f"/admin/social_django/usersocialauth/{github.pk}/change/",
        "/admin/activity/activity/",
        "/readyz",
    ]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        seen.append((path, response.content.decode()))

    # A refresh the provider refuses (it never issued the canary), and the error it gives.
    expire(token_set)
    with pytest.raises(vault.ReauthorizationRequired) as caught:
        vault.get_access_token(staff, "github")
    seen.append(("the error", f"{caught.value!r} {caught.value} {json.dumps(caught.value.as_dict())}"))
    seen.append(
        (
            "a staff force refresh",
            client.post(
                "/admin/vault/tokenset/",
                {"action": "force_refresh", "_selected_action": [token_set.pk]},
                follow=True,
            ).content.decode(),
        )
    )

    # A refresh the provider answers with new tokens, then a crash with them in local variables.
    def crash(self, **kwargs):
        raise RuntimeError("disk full")

    TokenSet.objects.filter(pk=token_set.pk).update(status=TokenSet.Status.ACTIVE)
    with monkeypatch.context() as patched:
        patched.setattr(
            SandboxGithubOAuth2,
            "refresh_token",
            lambda self, token, *a, **k: {
                "access_token": FRESH_ACCESS,
                "refresh_token": FRESH_REFRESH,
                "expires_in": 3600,
            },
        )
        patched.setattr(TokenSet, "set_tokens", crash)
        with pytest.raises(RuntimeError) as crashed:
            vault.get_access_token(staff, "github")
        seen.append(("an error report from a refresh", _report(crashed.value)))
        with pytest.raises(RuntimeError) as crashed:
            capture_tokens(
                identity=github, response={"access_token": FRESH_ACCESS, "refresh_token": FRESH_REFRESH}
            )
        seen.append(("an error report from a capture", _report(crashed.value)))

    # Commands, including a key rotation and a refresh run.
    new_keys = f"test-3:{generate_key()},{settings.VAULT_KEYS}"
    with override_settings(VAULT_KEYS=new_keys):
        for args in (
            ("vault_status", "--verify"),
            ("vault_rotate_keys",),
            ("vault_refresh", "--within", "7200"),
            ("vault_status",),
        ):
            out = io.StringIO()
            try:
                call_command(*args, stdout=out, stderr=out)
            except CommandError as error:  # vault_refresh exits non-zero when one failed (issue 14.6)
                out.write(str(error))
            seen.append((" ".join(args), out.getvalue()))
        # Disconnecting revokes (the sandbox refuses the unknown canary) without leaking it either.
        with django_capture_on_commit_callbacks(execute=True):
            client.post(f"/settings/connections/{github.pk}/disconnect/")
        seen.append(
            ("the connections page after disconnect", client.get("/settings/connections/").content.decode())
        )

    seen.append(("logs", caplog.text))
    seen.append(("log arguments", " ".join(repr(record.args) for record in caplog.records)))
    seen.append(("activity", json.dumps(list(Activity.objects.values("message", "data")), default=str)))
    seen.append(("email", " ".join(message.body for message in mail.outbox)))
    seen.append(
        ("the database", "".join(serializers.serialize("json", m.objects.all()) for m in apps.get_models()))
    )
    sessions, cached = decoded_sessions(), cache_contents()
    assert sessions and any("_auth_user_id" in session for session in sessions)  # really decoded
    seen.append(("sessions, decoded", repr(sessions)))
    seen.append(("the cache, unpickled", repr(cached)))
    assert any("SELECT" in record.getMessage() for record in caplog.records)  # SQL was really logged
    for where, text in seen:
        _assert_clean(text, where)
