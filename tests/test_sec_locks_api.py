"""Issue 20.2: the agent API answers JSON when the database gives up (a deadlock, a lock timeout).

Another transaction holds the profile row (the lock order's first step) while an agent asks for a
token that needs a refresh; the database gives up waiting (PostgreSQL: ``lock_timeout``; SQLite:
its busy timeout on the write lock). The agent gets a JSON 503 with ``Retry-After``, never an HTML
500, and once the lock is gone the same request succeeds.
"""

from __future__ import annotations

import contextlib
import json
import threading

import pytest
from django.db import connection, transaction
from django.test import Client

from accounts.models import User
from vault import agents
from vault.models import TokenSet

from .flows import sign_in
from .vault_support import expire


@contextlib.contextmanager
def short_lock_wait():
    """This connection gives up on a lock after 0.3 s, as a busy production database would."""
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    else:
        connection.connection.execute("PRAGMA busy_timeout = 300")
        try:
            yield
        finally:
            connection.connection.execute("PRAGMA busy_timeout = 20000")


@pytest.mark.django_db(transaction=True)
def test_a_token_request_the_database_gives_up_on_answers_json_503_with_retry_after(client):
    sign_in(client, "github", email="alice@example.com")
    user = User.objects.get()
    expire(TokenSet.objects.get())
    _, key = agents.create_agent_key(user=user, name="bot", providers=["github"])
    holding, release = threading.Event(), threading.Event()

    def hold_the_profile_row() -> None:
        try:
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    User.objects.select_for_update().get(pk=user.pk)
                else:  # SQLite locks the whole database for a writer
                    User.objects.filter(pk=user.pk).update(name="Alice")
                holding.set()
                release.wait(timeout=20)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_profile_row)
    holder.start()
    agent = Client()
    ask = lambda: agent.post(  # noqa: E731
        "/api/v1/token",
        json.dumps({"connection": "github"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    try:
        assert holding.wait(timeout=10)
        with short_lock_wait():
            response = ask()
    finally:
        release.set()
        holder.join(timeout=30)

    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert int(response["Retry-After"]) >= 1
    body = response.json()
    assert body["error"] == "vault_unavailable" and body["retry_after"] >= 1
    assert "Traceback" not in response.content.decode() and "deadlock" not in response.content.decode()

    retried = ask()
    assert retried.status_code == 200, retried.content[:300]
    assert retried.json()["connection"] == "github"
