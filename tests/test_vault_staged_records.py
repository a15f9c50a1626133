"""Token hand-outs staged in Redis with the request's limits, moved into the activity table once.

With Redis as the cache, a token request answered from the stored token makes one Redis round trip
for its limits and its record (vault/staged_records.py); these tests hold what that must not weaken:
every hand-out on record before the token leaves, nothing recorded for a refused request, no record
moved twice or lost by a failed step, the moment of the hand-out kept.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts.models import User
from activity.models import Activity
from vault import agents, hotpath, staged_records
from vault.activity_kinds import VaultKind
from vault.models import StagedRecordsMark

from .flows import sign_in
from .redis_support import redis_as_cache


@pytest.fixture
def redis_cache(settings):
    """Redis as the cache, under a key prefix of this test's own (tests run side by side)."""
    with redis_as_cache(settings, label="staging") as server:
        yield server


@pytest.fixture
def alice(client) -> User:
    sign_in(client, "github", email="alice@example.com", name="Alice")
    return User.objects.get(email="alice@example.com")


@pytest.fixture
def key(alice) -> str:
    return agents.create_agent_key(user=alice, name="release bot", providers=["github"])[1]


def post_token(key: str, **extra) -> tuple[int, dict]:
    response = Client().post(
        "/api/v1/token",
        json.dumps({"connection": "github"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
        **extra,
    )
    return response.status_code, response.json()


def issued() -> list[Activity]:
    return list(Activity.objects.filter(kind=VaultKind.TOKEN_ISSUED).order_by("id"))


@pytest.mark.django_db
def test_a_hand_out_is_staged_before_the_answer_and_moved_into_the_table_once(redis_cache, alice, key):
    before = timezone.now()
    status, body = post_token(key, REMOTE_ADDR="10.1.2.3")
    assert status == 200 and body["access_token"]
    assert issued() == [] and staged_records.waiting() == 1  # on record in Redis, not yet in the table

    time.sleep(0.05)
    moved_at = timezone.now()
    assert staged_records.drain() == 1
    (row,) = issued()
    assert row.user_id == alice.pk and row.agent_key_id is not None
    assert row.identity_id == body["account"] and row.provider == "github"
    assert row.ip_address == "10.1.2.3"
    assert row.message.startswith("Agent 'release bot' got a GitHub token")
    assert before <= row.created_at < moved_at  # the moment of the hand-out, not of the move
    assert body["access_token"] not in json.dumps(row.data) + row.message

    assert staged_records.drain() == 0 and len(issued()) == 1  # never twice
    assert StagedRecordsMark.objects.get().last_entry_id != "0-0"


@pytest.mark.django_db
def test_records_move_in_batches_in_the_order_they_were_handed_out(redis_cache, key, settings):
    # Redis joins a batch's records into one JSON array (the drainer reads no record in Python):
    # each batch starts after the last one's mark, and the table keeps the hand-outs' order.
    settings.VAULT_RATE_LIMITS = {"key": (100, 60), "user": (100, 60)}
    for _ in range(5):
        assert post_token(key)[0] == 200
    assert [staged_records.drain(batch=2) for _ in range(4)] == [2, 2, 1, 0]
    rows = issued()
    assert len(rows) == 5 and staged_records.waiting() == 0
    assert [r.created_at for r in sorted(rows, key=lambda r: r.id)] == sorted(r.created_at for r in rows)


@pytest.mark.django_db
def test_a_staged_record_reads_like_one_written_directly(redis_cache, alice, key, settings):
    post_token(key)
    staged_records.drain()
    (staged,) = issued()
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    post_token(key)  # no Redis: inserted at once
    direct = issued()[-1]
    fields = (
        "kind",
        "user_id",
        "actor_id",
        "provider",
        "uid",
        "identity_id",
        "agent_key_id",
        "message",
        "data",
    )
    assert [getattr(staged, f) for f in fields] == [getattr(direct, f) for f in fields]


@pytest.mark.django_db
def test_a_request_past_its_limit_stages_nothing(redis_cache, key, settings):
    settings.VAULT_RATE_LIMITS = {"key": (2, 60)}
    assert [post_token(key)[0] for _ in range(4)] == [200, 200, 429, 429]
    assert staged_records.waiting() == 2
    assert staged_records.drain_all() == 2 and len(issued()) == 2


@pytest.mark.django_db
def test_redis_away_refuses_the_token_and_records_nothing(key, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
        }
    }
    status, body = post_token(key)
    assert (status, body["error"]) == (503, "vault_unavailable") and "access_token" not in body
    assert issued() == []


@pytest.mark.django_db
def test_a_move_whose_trim_failed_is_not_repeated(redis_cache, key, monkeypatch):
    post_token(key)
    post_token(key)
    real_client = staged_records._client()

    class TrimFails:
        def __getattr__(self, name):
            return getattr(real_client, name)

        def xtrim(self, *args, **kwargs):  # the trim, after the rows were committed
            raise redis.ConnectionError("Redis went away after the rows were committed")

    monkeypatch.setattr(staged_records, "_client", TrimFails)
    with pytest.raises(redis.ConnectionError):
        staged_records.drain()
    assert len(issued()) == 2  # committed with the mark
    monkeypatch.undo()
    assert staged_records.drain() == 0 and len(issued()) == 2
    post_token(key)
    assert staged_records.drain() == 1 and len(issued()) == 3


@pytest.mark.django_db
def test_a_failed_insert_moves_nothing_and_the_next_drain_moves_it_all(redis_cache, key, monkeypatch):
    post_token(key)
    real_insert = hotpath.move_staged_token_issued

    def disk_full(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(hotpath, "move_staged_token_issued", disk_full)
    with pytest.raises(RuntimeError):
        staged_records.drain()
    assert issued() == [] and staged_records.waiting() == 1
    assert not StagedRecordsMark.objects.exclude(last_entry_id="0-0").exists()  # rolled back with the rows
    monkeypatch.setattr(hotpath, "move_staged_token_issued", real_insert)
    assert staged_records.drain() == 1 and len(issued()) == 1


@pytest.mark.django_db
def test_a_record_of_a_person_deleted_before_the_move_goes_with_them(redis_cache, alice, key):
    post_token(key)
    alice.delete()
    assert staged_records.drain() == 1  # taken off the stream
    assert issued() == []  # as on_delete=CASCADE took the rows already in the table
    assert staged_records.drain() == 0


@pytest.mark.django_db
def test_one_drainer_at_a_time_and_the_next_one_waits_its_turn(redis_cache, key):
    post_token(key)
    lease = f"{staged_records.stream_key()}:lease"
    redis_cache.set(lease, "another process", px=300)
    assert staged_records.drain() == 0 and issued() == []  # another drainer is at work
    assert staged_records.drain(wait=5) == 1 and len(issued()) == 1  # its lease ran out
    assert redis_cache.get(lease) is None  # given back after the move


@pytest.mark.django_db(transaction=True)
def test_drainers_side_by_side_move_every_record_exactly_once(redis_cache, key, settings):
    settings.VAULT_RATE_LIMITS = {"key": (10_000, 60), "user": (10_000, 60)}
    for _ in range(60):
        assert post_token(key)[0] == 200
    moved, failures = [], []

    def drainer():
        from django.db import connection

        try:
            for _ in range(20):
                moved.append(staged_records.drain(batch=7))
        except Exception as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=drainer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    staged_records.drain_all()
    assert sum(moved) <= 60 and len(issued()) == 60
    assert len({(r.created_at, r.id) for r in issued()}) == 60


@pytest.mark.django_db(transaction=True)
def test_the_site_process_moves_staged_records_itself(redis_cache, key, monkeypatch):
    monkeypatch.setattr(staged_records, "IDLE_SECONDS", 0.05)
    monkeypatch.setattr(staged_records, "_background_allowed", True)  # as linking_site.wsgi does
    try:
        assert post_token(key)[0] == 200
        deadline = time.monotonic() + 10
        while not issued() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(issued()) == 1  # moved by the process's drainer thread, nobody called drain()
        assert post_token(key)[0] == 200
    finally:
        staged_records.stop_drainer()  # as at the process's exit: what waits is moved first
    assert len(issued()) == 2 and staged_records.drain() == 0


@pytest.mark.django_db
def test_the_drain_command_moves_what_waits_and_says_how_many(redis_cache, key, capsys):
    post_token(key)
    post_token(key)
    call_command("vault_drain")
    assert capsys.readouterr().out.strip() == "Moved 2 staged records into the activity table."
    assert len(issued()) == 2


@pytest.mark.django_db
def test_without_redis_nothing_is_staged(key, capsys):
    assert post_token(key)[0] == 200
    assert len(issued()) == 1 and staged_records.waiting() == 0
    call_command("vault_drain")
    assert "Nothing is staged" in capsys.readouterr().out
