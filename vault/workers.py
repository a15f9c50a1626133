"""A bounded pool for cron work that mostly waits on providers (``vault_refresh --workers``).

At most ``workers`` items are worked on at a time, and at most a few more are read ahead: the items
may be a generator over a table of any size (``vault.refresh`` reads its selection page by page),
so memory stays flat in the number of items. Each worker thread has its own database connection
(Django's are per thread) and its own provider session (``vault.provider_calls.http_session``,
kept alive from one refresh to the next), and closes both when it runs out of work, so a run
leaves none behind.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

from django.db import connection

from .provider_calls import close_http_session

T = TypeVar("T")
R = TypeVar("R")

#: Items read ahead per worker: enough to keep every worker busy, few enough to stay small.
READ_AHEAD = 4
_DONE = object()


def run_bounded(
    items: Iterable[T],
    work: Callable[[T], R],
    *,
    workers: int,
    expected: tuple[type[Exception], ...],
    on_done: Callable[[R | Exception], None],
) -> None:
    """``work(item)`` for every item, at most ``workers`` at a time; ``on_done`` with each result or
    ``expected`` error, one call at a time. Any other error stops the run and is raised here."""
    # Inside a transaction, other connections could not see its uncommitted rows: one at a time.
    if workers <= 1 or connection.in_atomic_block:
        for item in items:
            try:
                result: R | Exception = work(item)
            except expected as error:
                result = error
            on_done(result)
        return
    pending: queue.Queue = queue.Queue(maxsize=workers * READ_AHEAD)
    lock = threading.Lock()
    crashed: list[BaseException] = []

    def worker() -> None:
        try:
            while not crashed:
                item = pending.get()
                if item is _DONE:
                    return
                try:
                    result: R | Exception = work(item)
                except expected as error:
                    result = error
                with lock:
                    on_done(result)
        except BaseException as error:  # re-raised in the caller's thread below
            crashed.append(error)
        finally:
            connection.close()
            close_http_session()

    threads = [threading.Thread(target=worker, name=f"vault-worker-{n}") for n in range(workers)]
    for thread in threads:
        thread.start()
    try:
        for item in items:
            while not crashed:
                try:
                    pending.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if crashed:
                break
    finally:
        for _ in threads:
            _put_when_room(pending, threads)
        for thread in threads:
            thread.join()
    if crashed:
        raise crashed[0]


def _put_when_room(pending: queue.Queue, threads: list[threading.Thread]) -> None:
    """One end-of-work marker, unless every worker has stopped already (then nobody reads it)."""
    while any(thread.is_alive() for thread in threads):
        try:
            pending.put(_DONE, timeout=0.2)
            return
        except queue.Full:
            continue
