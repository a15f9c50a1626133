"""Token hand-outs staged in Redis on their way to the activity table.

Every token handed to an agent is recorded before the token leaves. With Redis as the cache, the
record is staged in the same Lua script that counts the request against its rate limits
(``vault.ratelimit.admit_and_stage``): one Redis round trip carries the limits and the record, where
an insert after the limits cost a third round trip on every token request (issue 17; figures in
bench/README.md). The record is in Redis, another process, before the answer is sent, so a crash of
the site's process loses nothing. Run Redis with ``appendonly yes``, so that a crash of Redis itself
loses no more than PostgreSQL's asynchronous commit of a direct insert would (docs/deploy.md).

``drain()`` moves staged records into the table exactly once: the id of the last stream entry moved
is kept in the database (``StagedRecordsMark``) and advanced, compare-and-set, in the same
statement that inserts the rows (``hotpath.move_staged_token_issued``): of two drainers reading the
same entries, only the one that moved the mark inserts them. Entries moved are trimmed from the
stream afterwards. Each site process served through
``linking_site.wsgi`` drains in a background thread once it has staged a record (``start_drainer``)
and drains what waits at its exit, so records reach the table within about a second with no
other process to run; ``manage.py vault_drain`` moves what waits when no site process runs.

Without Redis (one process: SQLite and the local-memory cache) nothing is staged: the vault inserts
the record at once (``hotpath.insert_token_issued``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import uuid
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import IntegrityError, close_old_connections, connections, transaction

from . import hotpath
from .agent_models import StagedRecordsMark

logger = logging.getLogger(__name__)

#: The stream's name in the cache (the cache's key prefix and version are added).
STREAM = "vault:staged-token-issued"
#: Entries moved per transaction.
BATCH = 1000
#: How long a drainer waits before looking again. A second: a busy site then moves its records in
#: batches of hundreds, and the drainers (one thread in each site process) took 6-9 us of CPU per
#: token request against 50 us when they looked ten times a second (bench/README.md).
IDLE_SECONDS = 1.0
#: How long a drainer waits after a failure (the database or Redis away) before trying again.
FAILURE_PAUSE_SECONDS = 5.0
#: The drainers' lease: long enough for a batch, short enough that a crashed holder is not missed.
LEASE_MILLISECONDS = 5000
#: KEYS: the stream; ARGV: the id to read after, how many entries. Returns the last entry's id, the
#: records as one JSON array and how many entries were read. Redis joins them, so the drainer
#: spends no Python per record: parsing XRANGE's answer in Python cost about 2 us a record, held
#: under the interpreter lock of a process that serves requests (a batch of a thousand delayed
#: them by milliseconds: the p99 tail).
_READ_SCRIPT = """
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
if #entries == 0 then return {'', '[]', 0} end
local records = {}
for i, entry in ipairs(entries) do
  local fields = entry[2]
  for j = 1, #fields, 2 do
    if fields[j] == 'r' then records[#records + 1] = fields[j + 1] end
  end
end
return {entries[#entries][1], '[' .. table.concat(records, ',') .. ']', #entries}
"""
#: A drainer gives its lease back only if it is still its own.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def stream_key() -> str | None:
    """The stream's key in Redis, or None when the cache is not Redis (nothing is staged)."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    return backend.make_key(STREAM)


def drain(*, batch: int = BATCH, wait: float = 0.0) -> int:
    """Move up to ``batch`` staged records into the table, exactly once; the number moved.

    0 when nothing waits, when the cache is not Redis, or when another drainer is at work (after
    waiting up to ``wait`` seconds for it to finish).
    """
    client, key = _client(), stream_key()
    if client is None or key is None:
        return 0
    lease = _take_lease(client, key, wait=wait)
    if lease is None:
        return 0
    try:
        return _move(client, key, batch=batch)
    finally:
        client.eval(_RELEASE_SCRIPT, 1, f"{key}:lease", lease)


def _take_lease(client: Any, key: str, *, wait: float) -> str | None:
    """One drainer at a time, across processes and hosts: a short lease in Redis. Without it every
    process's drainer read and sent the same entries, and all but one were refused by the mark;
    correct, but the waste stalled the requests those processes serve. The mark, not the lease,
    keeps a record from being moved twice (a lease that lapses mid-move costs only a refusal)."""
    lease, deadline = uuid.uuid4().hex, time.monotonic() + wait
    while not client.set(f"{key}:lease", lease, nx=True, px=LEASE_MILLISECONDS):
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)
    return lease


def _move(client: Any, key: str, *, batch: int) -> int:
    after = _mark()
    upto, records, count = client.register_script(_READ_SCRIPT)(keys=[key], args=[after, batch])
    if not count:
        return 0
    upto = upto.decode()
    if hotpath.move_staged_token_issued(records=records.decode(), after=after, upto=upto) is None:
        return 0  # another drainer moved them first
    # The entries up to the mark, all in the table now, leave the stream. A failure here leaves
    # them for the next trim, never for a second insert: the next drain starts after the mark.
    client.xtrim(key, minid=_next_id(upto), approximate=False)
    return count


def drain_all(*, wait: float = 0.0) -> int:
    """Move everything staged (``manage.py vault_drain``); the number moved. ``wait``: how long each
    step may wait for another drainer at work to finish (a process that stops waits)."""
    moved = 0
    while True:
        count = drain(wait=wait)
        moved += count
        if count < BATCH:
            return moved


def waiting() -> int:
    """How many staged records wait to be moved; 0 without Redis."""
    client, key = _client(), stream_key()
    return int(client.xlen(key)) if client is not None and key is not None else 0


def _next_id(entry_id: str) -> str:
    """The smallest stream id after ``entry_id`` ("<ms>-<seq>"): trimming below it removes the entry."""
    milliseconds, sequence = entry_id.split("-")
    return f"{milliseconds}-{int(sequence) + 1}"


def _mark() -> str:
    """The id of the last entry moved, the mark made on first use (a new or flushed database)."""
    found = StagedRecordsMark.objects.filter(pk=StagedRecordsMark.ONLY).values_list(
        "last_entry_id", flat=True
    )
    for last_entry_id in found:
        return last_entry_id
    with contextlib.suppress(IntegrityError), transaction.atomic():
        StagedRecordsMark.objects.create(pk=StagedRecordsMark.ONLY)  # unless another drainer just did
    return StagedRecordsMark._meta.get_field("last_entry_id").default


def _client() -> Any:
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    return backend._cache.get_client(write=True)


# The background drainer: one thread per site process, started by the first record it stages.

_background_allowed = False
_started_in: int | None = None
_start_lock = threading.Lock()
_stopping = threading.Event()
_thread: threading.Thread | None = None


def drain_in_background() -> None:
    """Let this process run a drainer thread (``linking_site.wsgi`` calls it; commands and tests
    never start one, they call ``drain()``)."""
    global _background_allowed
    _background_allowed = True


def start_drainer() -> None:
    """Start this process's drainer thread, once (cheap to call on every staged record). At the
    process's normal exit (gunicorn's graceful stop, a restart) what waits is moved first."""
    global _started_in, _thread
    if not _background_allowed or _started_in == os.getpid():
        return
    with _start_lock:
        if _started_in == os.getpid():
            return
        _started_in = os.getpid()  # a forked child has its own pid, and starts its own thread
        _stopping.clear()
        _thread = threading.Thread(target=_drain_forever, name="staged-records-drainer", daemon=True)
        _thread.start()
        atexit.register(stop_drainer)


def stop_drainer() -> None:
    """Stop this process's drainer thread and move what waits (at exit; tests)."""
    global _started_in
    if _started_in != os.getpid():
        return
    _stopping.set()
    _started_in = None
    if _thread is not None:
        _thread.join(timeout=10)
    try:
        drain_all(wait=5.0)
    except Exception:
        logger.exception("Staged token hand-outs could not be moved at exit; the next site process will.")
    finally:
        close_old_connections()


def _drain_forever() -> None:
    client, key = _client(), stream_key()
    seen = None
    while not _stopping.is_set():
        try:
            # Redis first: an idle drainer never opens a database connection. The newest entry
            # is read before draining, so one staged meanwhile is seen on the next look.
            newest = client.xrevrange(key, max="+", min="-", count=1)
            latest = newest[0][0] if newest else None
            if latest != seen:
                while drain() == BATCH:
                    pass
                seen = latest
            _stopping.wait(IDLE_SECONDS)
        except Exception:
            logger.exception("Moving staged token hand-outs failed; trying again in a few seconds.")
            _stopping.wait(FAILURE_PAUSE_SECONDS)
        finally:
            close_old_connections()
    connections.close_all()  # this thread's own connections
