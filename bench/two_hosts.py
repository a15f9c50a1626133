"""Two hosts: two gunicorn site processes (each its own port, as two machines would run them) over
one PostgreSQL and one Redis. Checked: a key's rate limit is shared exactly (requests over the
limit sent to both: exactly the limit answered 200), 50 concurrent requests on one expired token
split across both make one provider refresh, and a session made on one is valid on the other."""

from __future__ import annotations

import http.client
import time

from bench import load
from bench.env import TOKEN_BODY, bearer_for, gunicorn, log
from bench.throughput import tally
from tests.deploy_support import free_port

#: The per-key limit the two hosts run with (``BENCH_KEY_LIMIT``), and how many requests test it.
KEY_LIMIT = 60
OVER_LIMIT_REQUESTS = 150


def _wait_for_fresh_window(seconds: int = 60, margin: float = 8.0) -> None:
    """Start the limit check early in a fixed window, so all of it is counted in one window."""
    left = seconds - time.time() % seconds
    if left < margin:
        time.sleep(left + 0.2)


def shared_limit(ports: list[int], key: str) -> dict:
    _wait_for_fresh_window()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    answers = load.burst(
        "127.0.0.1",
        ports,
        count=OVER_LIMIT_REQUESTS,
        method="POST",
        path="/api/v1/token",
        headers=headers,
        body=TOKEN_BODY,
    )
    statuses: dict[str, int] = {}
    workers = set()
    for answer in answers:
        status = "error" if isinstance(answer, BaseException) else str(answer.status)
        statuses[status] = statuses.get(status, 0) + 1
        if not isinstance(answer, BaseException):
            workers.add(answer.worker)
    return {
        "limit": KEY_LIMIT,
        "requests": OVER_LIMIT_REQUESTS,
        "statuses": statuses,
        "allowed": statuses.get("200", 0),
        "exact": statuses.get("200", 0) == KEY_LIMIT
        and statuses.get("429", 0) == OVER_LIMIT_REQUESTS - KEY_LIMIT,
        "processes_seen": len(workers),
    }


def split_refresh(ports: list[int], real, key: str, count: int) -> dict:
    from bench.seed import expire
    from sandbox import state

    expire(real.token_set_id)
    state.reset("github")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    answers = load.burst(
        "127.0.0.1", ports, count=count, method="POST", path="/api/v1/token", headers=headers, body=TOKEN_BODY
    )
    return tally(answers, count)


def shared_session(ports: list[int], user) -> dict:
    """A session made by one sign-in (the session store both hosts share) answers on both."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    statuses = {}
    for port in ports:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/settings/connections/", headers={"Cookie": cookie, "Host": "127.0.0.1"})
        response = conn.getresponse()
        body = response.read()
        statuses[str(port)] = {"status": response.status, "signed_in": b"data-uid=" in body}
        conn.close()
    return {
        "answers": list(statuses.values()),
        "valid_on_both": all(a["status"] == 200 and a["signed_in"] for a in statuses.values()),
    }


def two_hosts(*, server_env: dict, special: dict, users: list, burst: int) -> dict:
    env = {**server_env, "BENCH_KEY_LIMIT": str(KEY_LIMIT)}
    ports = [free_port(), free_port()]
    threads = -(-burst // 2)
    with (
        gunicorn("host-a", port=ports[0], workers=1, threads=threads, env=env),
        gunicorn("host-b", port=ports[1], workers=1, threads=threads, env=env),
    ):
        log("two hosts: the rate limit shared exactly")
        limit = shared_limit(ports, bearer_for(users[0]))
        log(f"two hosts: {burst} concurrent requests on one expired token, split across both")
        real = special["real"]
        refresh = split_refresh(ports, real, bearer_for(real.user), burst)
        log("two hosts: one session on both")
        session = shared_session(ports, special["many"])
    return {"ports": ports, "limit": limit, "refresh": refresh, "session": session}
