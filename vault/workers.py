"""A bounded pool for cron work that mostly waits on providers (``vault_refresh --workers``).

Each worker thread has its own database connection (Django's are per thread) and closes it when
it runs out of work, so a run never leaves connections behind.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")
R = TypeVar("R")


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
    items = list(items)
    # Inside a transaction, other connections could not see its uncommitted rows: one at a time.
    if min(workers, len(items)) <= 1 or connection.in_atomic_block:
        for item in items:
            try:
                result: R | Exception = work(item)
            except expected as error:
                result = error
            on_done(result)
        return
    pending: queue.SimpleQueue[T] = queue.SimpleQueue()
    for item in items:
        pending.put(item)
    lock = threading.Lock()
    crashed: list[BaseException] = []

    def worker() -> None:
        try:
            while not crashed:
                try:
                    item = pending.get_nowait()
                except queue.Empty:
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

    threads = [threading.Thread(target=worker, name=f"vault-worker-{n}") for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if crashed:
        raise crashed[0]
