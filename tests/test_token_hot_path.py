"""The token API's hot path (issue 7): one prepared query, one limits round trip, one record.

The fast path answers only when the stored token can be handed out as is; everything else goes
through ``get_access_token``. These tests hold the two to the same answers, and check what the
speed-ups change: statements prepared on PostgreSQL (and nowhere else), the token-issued record
committed without waiting for the disk (and only outside a transaction), and a Redis that does not
answer refusing rather than not counting.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection, transaction
from django.db.models import signals
from django.test import Client
from django.test.utils import CaptureQueriesContext
from social_django.models import UserSocialAuth

import vault
from accounts.activity_kinds import AccountKind
from accounts.models import User
from activity import recording
from activity.models import Activity
from sandbox import state as sandbox_state
from vault import agents, hotpath, keyformat
from vault.activity_kinds import VaultKind
from vault.models import TokenSet

from .deploy_support import PYTHON, production_env, run
from .flows import round_trip, sign_in
from .vault_support import expire, stored_tokens

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client) -> User:
    sign_in(client, "github", email="alice@example.com", name="Alice")
    round_trip(client, "github", email="alice-work@example.com")
    return User.objects.get(email="alice@example.com")


@pytest.fixture
def key(alice) -> str:
    return agents.create_agent_key(user=alice, name="helper bot", providers=["github"])[1]


def token(key: str, **body: object) -> tuple[int, dict, object]:
    response = Client().post(
        "/api/v1/token",
        json.dumps({"connection": "github", **body}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    return response.status_code, response.json(), response


def identity(email: str) -> UserSocialAuth:
    return UserSocialAuth.objects.get(details__email=email)


def issued() -> list[Activity]:
    return list(Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED).order_by("id"))


# --- the same answers as get_access_token -------------------------------------------------------


def test_the_api_hands_out_what_get_access_token_hands_out(client, alice, key):
    first, second = identity("alice@example.com"), identity("alice-work@example.com")
    status, body, _ = token(key)
    assert status == 200
    python = vault.get_access_token(alice, "github")
    assert (
        (body["access_token"], body["account"])
        == (python.access_token, python.account)
        == (
            stored_tokens(first.token_set)[0],
            first.pk,
        )
    )
    # Another account by id, then the user makes it the default: both ways agree again.
    status, body, _ = token(key, account=second.pk)
    assert (status, body["access_token"]) == (200, stored_tokens(second.token_set)[0])
    client.post(f"/settings/connections/{second.pk}/default/")
    assert token(key)[1]["account"] == vault.get_access_token(alice, "github").account == second.pk
    assert [grant.identity_id for grant in issued()] == [first.pk, second.pk, second.pk]


def test_a_token_expiring_within_min_ttl_is_refreshed_first(alice, key):
    token_set = identity("alice@example.com").token_set
    before, _ = stored_tokens(token_set)
    refreshes = sandbox_state.refresh_count("github")
    # Valid for about ten minutes: fine for the default min_ttl, not for one of twenty minutes.
    expire(token_set, seconds_ago=-600)
    assert token(key)[1]["access_token"] == before
    assert sandbox_state.refresh_count("github") == refreshes
    status, body, _ = token(key, min_ttl=1200)
    assert status == 200 and body["access_token"] != before and body["expires_in"] > 1200
    assert sandbox_state.refresh_count("github") == refreshes + 1
    assert body["access_token"] == stored_tokens(TokenSet.objects.get(pk=token_set.pk))[0]


def test_a_ciphertext_moved_from_another_row_is_refused_and_nothing_recorded(alice, key):
    mine = identity("alice@example.com").token_set
    sign_in(Client(), "github", email="mallory@example.com")
    theirs = identity("mallory@example.com").token_set
    TokenSet.objects.filter(pk=mine.pk).update(access_token_encrypted=theirs.access_token_encrypted)
    status, body, response = token(key)
    assert (status, body["error"]) == (503, "vault_unavailable")
    assert stored_tokens(theirs)[0] not in response.content.decode()
    assert issued() == []


def test_reconnect_required_and_missing_scopes_answer_like_get_access_token(alice, key):
    token_set = identity("alice@example.com").token_set
    status, body, _ = token(key, scopes=["admin:org"])
    with pytest.raises(vault.InsufficientScope) as python:
        vault.get_access_token(alice, "github", scopes=["admin:org"])
    assert (status, body["error"], body["required_scopes"]) == (403, python.value.code, ["admin:org"])
    TokenSet.objects.filter(pk=token_set.pk).update(status=TokenSet.Status.RECONNECT_REQUIRED)
    status, body, _ = token(key)
    assert (status, body["error"]) == (403, "reauthorization_required")
    assert body["authorize_url"].endswith(f"/connect/{body['connect_request']}/")
    assert issued() == []


# --- prepared statements -------------------------------------------------------------------------


def _prepared_statements() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


def test_the_lookup_is_prepared_once_per_connection_on_postgresql_only(alice, key):
    other_key = agents.create_agent_key(user=alice, name="second bot", providers=["github"])[1]
    sent: list[tuple[str, tuple]] = []

    def capture(execute, sql, params, many, context):
        sent.append((sql, tuple(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        for raw in (key, other_key, key):
            assert token(raw)[0] == 200
    lookups = [(sql, params) for sql, params in sent if "key_hash" in sql]
    assert len(lookups) == 3 and len({sql for sql, _ in lookups}) == 1  # one fixed statement
    hashes = {keyformat.key_hash(raw) for raw in (key, other_key)}
    assert {params[-1] for _sql, params in lookups} == hashes  # each key's hash, bound as a value
    assert not any(h in lookups[0][0] for h in hashes)
    if connection.vendor == "postgresql":
        assert any("key_hash" in statement for statement in _prepared_statements())
    else:
        assert connection.vendor == "sqlite"  # no prepared statements to keep: the same SQL runs


@pytest.mark.django_db(transaction=True)
def test_the_hot_path_answers_after_its_database_connection_was_closed_and_reopened(alice, key):
    # On PostgreSQL each connection keeps one prepared cursor (vault.prepared): a new connection
    # must get its own, never the closed one's.
    assert token(key)[0] == 200
    connection.close()
    status, body, _ = token(key)
    assert status == 200 and body["access_token"]
    with CaptureQueriesContext(connection) as captured:  # a query log: a cursor of its own
        assert token(key)[0] == 200
    assert any("key_hash" in query["sql"] for query in captured.captured_queries)
    assert token(key)[0] == 200 and len(issued()) == 4


def test_the_hot_path_reads_the_same_times_as_the_orm(alice, key):
    found = hotpath.find_key_and_account(key_hash=keyformat.key_hash(key), provider="github", account_id=None)
    row = agents.AgentKey.objects.get(pk=found.key.pk)
    stored = TokenSet.objects.get(pk=found.account.token_set.pk)
    assert found.key.expires_at == row.expires_at and found.key.expires_at.utcoffset().total_seconds() == 0
    assert found.account.token_set.expires_at == stored.expires_at
    assert found.account.token_set.issued_at == stored.issued_at


def test_the_hot_path_builds_the_instances_the_orm_would(alice, key):
    # vault.prepared makes them without Model.__init__ when that changes nothing: the columns
    # read hold the ORM's values, the others are deferred and load on use, a save is an update.
    found = hotpath.find_key_and_account(key_hash=keyformat.key_hash(key), provider="github", account_id=None)
    for loaded in (found.key, found.key.user, found.account.token_set):
        model = type(loaded)
        deferred = loaded.get_deferred_fields()
        read = [f.attname for f in model._meta.concrete_fields if f.attname not in deferred]
        orm = model.objects.only(*read).get(pk=loaded.pk)
        assert deferred == orm.get_deferred_fields()
        assert {name: getattr(loaded, name) for name in read} == {name: getattr(orm, name) for name in read}
        assert (loaded._state.adding, loaded._state.db) == (False, "default")
    assert found.key.get_deferred_fields() and found.key.key_hash == keyformat.key_hash(key)
    found.key.name = "renamed bot"
    found.key.save(update_fields=["name"])
    assert list(agents.AgentKey.objects.values_list("name", flat=True)) == ["renamed bot"]


def test_an_init_signal_receiver_still_sees_the_hot_paths_instances(alice, key):
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append((sender, instance.pk))

    signals.post_init.connect(receiver, sender=TokenSet)
    try:
        found = hotpath.find_key_and_account(
            key_hash=keyformat.key_hash(key), provider="github", account_id=None
        )
    finally:
        signals.post_init.disconnect(receiver, sender=TokenSet)
    assert seen == [(TokenSet, found.account.token_set.pk)]


def test_prepared_statements_can_be_turned_off_for_a_pooler():
    read = (
        "import json; from linking_site import settings; "
        "print(json.dumps(settings.DATABASES['default']['OPTIONS'].get('prepare_threshold', 'unset')))"
    )
    answers = {}
    for value in ("on", "off"):
        env = production_env(DATABASE_PREPARED_STATEMENTS=value)
        result = run([PYTHON, "-c", read], env)
        assert result.returncode == 0, result.stderr
        answers[value] = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers == {"on": 5, "off": None}


# --- the record of the hand-out ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_record_is_committed_at_once_without_waiting_for_the_disk(client):
    sign_in(client, "github", email="alice@example.com")
    alice = User.objects.get()
    key = agents.create_agent_key(user=alice, name="helper bot", providers=["github"])[1]
    token(key)  # the key's first use is noted; the next request is the steady state
    with CaptureQueriesContext(connection) as captured:
        status, body, _ = token(key)
    assert status == 200
    inserts = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    grant = issued()[-1]
    assert (grant.user_id, grant.identity_id, grant.provider) == (alice.pk, body["account"], "github")
    assert body["access_token"] not in json.dumps(grant.data) + grant.message
    if connection.vendor == "postgresql":
        assert "set_config('synchronous_commit', 'off', true)" in inserts[0]
        with connection.cursor() as cursor:  # local to that statement: the session still waits
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"
    else:
        assert "synchronous_commit" not in inserts[0]


def test_inside_a_transaction_the_record_keeps_the_transactions_durability(alice):
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        entry = recording.new_record(kind=VaultKind.TOKEN_ISSUED, user=alice, provider="github", message="t")
        hotpath.insert_token_issued(entry)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SHOW synchronous_commit")
                assert cursor.fetchone()[0] == "on"
    assert "synchronous_commit" not in captured.captured_queries[0]["sql"]
    assert Activity.objects.get(pk=entry.pk).message == "t"


def test_records_are_append_only_and_complete(alice):
    entry = recording.record(
        kind=AccountKind.LINKED,
        user=alice,
        identity=identity("alice@example.com"),
        message="Linked",
        data={"k": [1, 2]},
        ip_address="203.0.113.9",
    )
    stored = Activity.objects.get(pk=entry.pk)
    assert (stored.provider, stored.uid, stored.identity_id) == (
        "github",
        identity("alice@example.com").uid,
        identity("alice@example.com").pk,
    )
    assert (stored.data, stored.ip_address, stored.created_at) == (
        {"k": [1, 2]},
        "203.0.113.9",
        entry.created_at,
    )
    stored.message = "changed"
    with pytest.raises(ValueError, match="append-only"):
        stored.save()


# --- limits ---------------------------------------------------------------------------------------


def test_an_unreachable_redis_refuses_with_a_json_503_and_hands_out_nothing(settings, alice, key):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    status, body, response = token(key)
    assert (status, body["error"]) == (503, "vault_unavailable")
    assert "access_token" not in body and int(response.headers["Retry-After"]) >= 1
    assert issued() == []
