"""In-process measurements: queries per request, calls per second, and the plans of the hot
statements (``EXPLAIN``), all through Django's own connection in the benchmark's process."""

from __future__ import annotations

import statistics
import time

from bench.env import TOKEN_BODY

#: The tables that grow with N: a sequential scan of one of them is a plan that does not stay flat.
GROWING_TABLES = frozenset(
    {
        "accounts_user",
        "social_auth_usersocialauth",
        "accounts_identitydetails",
        "vault_tokenset",
        "vault_agentkey",
        "accounts_activity",
    }
)


def _growing(table: str) -> bool:
    # The activity table's monthly partitions and its default partition grow with it.
    return table in GROWING_TABLES or table.startswith("accounts_activity_")


def count_queries(call) -> tuple[int, list[str], object]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        result = call()
    return len(captured.captured_queries), [query["sql"] for query in captured.captured_queries], result


def post_token(client, key: str, path: str = "/api/v1/token"):
    return client.post(
        path, data=TOKEN_BODY, content_type="application/json", headers={"Authorization": f"Bearer {key}"}
    )


def token_request_queries(client, key: str) -> dict:
    first = post_token(client, key)  # warms per-process caches (content types, backends) like a worker
    if first.status_code != 200:
        return {"error": f"token request answered {first.status_code}: {first.content[:300]!r}"}
    count, sql, response = count_queries(lambda: post_token(client, key))
    return {"queries": count, "status": response.status_code, "sql": sql}


def connections_page_queries(client, user) -> dict:
    client.force_login(user)
    client.get("/settings/connections/")
    count, sql, response = count_queries(lambda: client.get("/settings/connections/"))
    identities = response.content.count(b"data-uid=")
    return {"queries": count, "status": response.status_code, "identities_shown": identities, "sql": sql}


def calls_per_second(call, seconds: float) -> float:
    call()
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(20):
            call()
        done += 20
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - started)


def timed_ms(call, count: int) -> float:
    """Median milliseconds of ``count`` calls (after one warm-up call)."""
    call()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def in_process_rates(user, token_set_id: int, *, seconds: float, rounds: int) -> dict:
    import vault
    from vault.models import TokenSet

    get_token = lambda: vault.get_access_token(user, "github")  # noqa: E731
    pk_fetch = lambda: TokenSet.objects.get(pk=token_set_id)  # noqa: E731
    vault_rates, pk_rates = [], []
    for _ in range(rounds):
        vault_rates.append(calls_per_second(get_token, seconds))
        pk_rates.append(calls_per_second(pk_fetch, seconds))
    queries, _sql, _ = count_queries(get_token)
    vault_rate, pk_rate = statistics.median(vault_rates), statistics.median(pk_rates)
    return {
        "get_access_token_per_s": round(vault_rate, 1),
        "pk_fetch_per_s": round(pk_rate, 1),
        "ratio": round(vault_rate / pk_rate, 3),
        "get_access_token_queries": queries,
    }


def plan_nodes(plan: dict) -> list[dict]:
    """Every node of an ``EXPLAIN (FORMAT JSON)`` plan, depth first."""
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(plan_nodes(child))
    return nodes


def summarise_plan(plan: dict) -> dict:
    """The plan, its scans, and whether any scan reads a growing table sequentially."""
    nodes = plan_nodes(plan)
    scans = [
        f"{node['Node Type']} on {node.get('Relation Name')}"
        + (f" ({node['Index Name']})" if "Index Name" in node else "")
        for node in nodes
        if "Relation Name" in node
    ]
    seq = [node["Relation Name"] for node in nodes if node["Node Type"] == "Seq Scan"]
    return {
        "scans": scans,
        "index_only": not any(_growing(name) for name in seq),
        "sequential_scans": seq,
        "total_cost": plan.get("Total Cost"),
        "plan": plan,
    }


def explain(sql: str, params: list) -> dict:
    """``EXPLAIN (FORMAT JSON)`` of one statement with its parameters bound (never executed)."""
    import json

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        raw = cursor.fetchone()[0]
    data = json.loads(raw) if isinstance(raw, str) else raw
    return summarise_plan(data[0]["Plan"])


def explain_queryset(queryset) -> dict:
    import json

    return summarise_plan(json.loads(queryset.explain(format="json"))[0]["Plan"])


def explain_captured(call) -> list[dict]:
    """The plans of every SELECT one call runs (Django logs them with their values bound)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        call()
    plans = []
    for query in captured.captured_queries:
        sql = query["sql"]
        if sql.lstrip().upper().startswith("SELECT") and "%s" not in sql:
            plans.append({"sql": sql[:300], **explain(sql, [])})
    return plans


def hot_plans(*, key: str, user, many) -> dict:
    """``EXPLAIN`` of the statements that must stay flat in N: the token request's one query, the
    API's key query, the connections page's queries and the refresh selection."""
    from datetime import timedelta

    from django.test import Client
    from django.utils import timezone

    from vault import keyformat, prepared, refresh_selection

    key_hash = keyformat.key_hash(key)
    # The statements as the token request builds them (built once per process, cached by name).
    issue_sql = prepared.statement("hotpath.issue.False", lambda: "")
    key_sql = prepared.statement("hotpath.key", lambda: "")
    plans = {}
    if issue_sql:
        plans["token_request"] = explain(issue_sql, ["github", key_hash])
    if key_sql:
        plans["key_query"] = explain(key_sql, [key_hash])
    client = Client()
    client.force_login(many)
    client.get("/settings/connections/")
    plans["connections_page"] = explain_captured(lambda: client.get("/settings/connections/"))
    horizon = timezone.now() + timedelta(seconds=600)
    plans["refresh_selection"] = explain_queryset(refresh_selection.due_token_sets(horizon))
    return plans


def plans_index_only(plans: dict) -> bool:
    found = []
    for value in plans.values():
        found.extend(value if isinstance(value, list) else [value])
    return all(plan["index_only"] for plan in found)
