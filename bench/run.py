"""The benchmark: ``make bench`` (or ``.venv/bin/python bench/run.py --help``). See bench/README.md.

It creates its own PostgreSQL database (dropped and created again on every run), seeds N users with
identities and encrypted token sets, serves the site with gunicorn (2 workers, DEBUG off, Redis
cache, the sandbox providers on a separate gunicorn process standing in for GitHub), and measures,
as ratios so that machine noise cancels:

* ``POST /api/v1/token`` (a fresh token) against the floor view and the plaintext baseline view;
* ``vault.get_access_token`` in-process against a bare primary-key fetch of the same row;
* database queries per token request and per connections page (1 and 25 identities);
* ``manage.py vault_rotate_keys``: rows per second and peak memory;
* 50 concurrent requests on one expired token: refresh calls that reached the provider.

It prints a table (with PASS/MISS for each target of issue 7) and writes ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import os
import platform
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402

# The deployment tests' process helpers: free ports, waiting for /healthz, stopping a process group.
from tests.deploy_support import free_port, stop, wait_ready  # noqa: E402

RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent
PG_SERVER = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS_SERVER = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
DB_NAME = "bench_linking_site"
REDIS_DB = 15
TOKEN_BODY = json.dumps({"connection": "github"})

#: Issue 7's targets.
MIN_TOKEN_VS_FLOOR = 0.8
MIN_TOKEN_VS_BASELINE = 0.9
MAX_TOKEN_QUERIES = 3
#: "Flat in N": peak RSS at the largest N at most this much above the smallest N's.
FLAT_RSS_TOLERANCE = 0.10
FLAT_RSS_SLACK_KB = 4096


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- environment and database ---------------------------------------------------------------------


def _vault_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def prepare_environment(args) -> dict[str, str]:
    """The deployment-like environment shared by this process and every child it starts."""
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "LINKING_SITE_IGNORE_DOTENV": "1",
        "DEBUG": "off",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "DATABASE_URL": f"{PG_SERVER}/{DB_NAME}",
        "CACHE_URL": f"{REDIS_SERVER}/{REDIS_DB}" if args.cache == "redis" else "locmemcache://bench",
        "VAULT_KEYS": f"bench-1:{_vault_key()}",
        "LINKING_SITE_FORCE_SANDBOX": "1",
        "SANDBOX_PROVIDERS": "on",
        "SECURE_SSL_REDIRECT": "off",
        "SOCIAL_AUTH_REDIRECT_IS_HTTPS": "off",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "SITE_URL": "http://127.0.0.1:8000",
        "BENCH_STATIC_ROOT": str(RESULTS / "static"),
        "EMAIL_URL": "dummymail://",
    }
    os.environ.update(env)
    return env


def _admin_sql(*statements: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def recreate_database() -> None:
    _admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', f'CREATE DATABASE "{DB_NAME}"')


def drop_database() -> None:
    from django.db import connections

    connections.close_all()
    _admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def analyze() -> None:
    """Refresh the planner's statistics after a bulk load, as autovacuum does on a live database.

    Without it, PostgreSQL plans the identity lookup on a 100,000-row table with the statistics of
    an empty one (a bitmap AND over the provider index), which costs 4x more than the real plan.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def flush_redis(env: dict[str, str]) -> None:
    if not env["CACHE_URL"].startswith("redis://"):
        return
    import redis

    redis.Redis.from_url(env["CACHE_URL"]).flushdb()


def check_services(args) -> None:
    import psycopg

    try:
        psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3).close()
    except psycopg.Error as error:
        sys.exit(f"PostgreSQL is not reachable at {PG_SERVER} ({error}); start it or set BENCH_PG.")
    if args.cache == "redis":
        import redis

        try:
            redis.Redis.from_url(f"{REDIS_SERVER}/{REDIS_DB}", socket_connect_timeout=3).ping()
        except redis.RedisError as error:
            sys.exit(
                f"Redis is not reachable at {REDIS_SERVER} ({error}); "
                "start it, set BENCH_REDIS or use --cache locmem."
            )


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    from django import get_version
    from django.db import connection

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "django": get_version(),
        "postgresql": connection.cursor().connection.info.server_version,
        "load_generator": "wrk" if load.have_wrk() else "python-threads",
    }


# --- processes ----------------------------------------------------------------------------------------


@contextmanager
def gunicorn(name: str, *, port: int, workers: int, threads: int = 1, env: dict[str, str]):
    """A gunicorn server (its own process group) for the duration of the block; always stopped."""
    log_path = RESULTS / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        str(VENV_BIN / "gunicorn"),
        "bench.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--timeout",
        "60",
        "--backlog",
        "2048",
    ]
    if threads > 1:
        # At most ``threads`` connections per worker, so a burst is shared by all the workers.
        argv += ["--worker-class", "gthread", "--threads", str(threads), "--worker-connections", str(threads)]
    with log_path.open("w") as out:
        process = subprocess.Popen(  # noqa: S603
            argv,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_ready(port, process, log_path)
        yield process
    finally:
        stop(process)


def run_child(argv: list[str], env: dict[str, str]) -> dict:
    """Run a child to completion: wall time, exit status, output, and its own peak RSS (bench/peak_rss.py)."""
    started = time.perf_counter()
    completed = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "bench" / "peak_rss.py"), *argv],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    lines = completed.stdout.splitlines()
    peak = next((int(line.split()[1]) for line in reversed(lines) if line.startswith("PEAK-RSS-KB ")), 0)
    output = "\n".join(line for line in lines if not line.startswith("PEAK-RSS-KB "))
    return {"seconds": wall, "returncode": completed.returncode, "output": output, "max_rss_kb": peak}


# --- in-process measurements -------------------------------------------------------------------------


def count_queries(call) -> tuple[int, list[str], object]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        result = call()
    return len(captured.captured_queries), [query["sql"] for query in captured.captured_queries], result


def token_request_queries(client, key: str) -> dict:
    def post():
        return client.post(
            "/api/v1/token",
            data=TOKEN_BODY,
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}"},
        )

    first = post()  # warms per-process caches (content types, backends) like a long-running worker
    if first.status_code != 200:
        return {"error": f"token request answered {first.status_code}: {first.content[:300]!r}"}
    count, sql, response = count_queries(post)
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


def profile_requests(client, key: str, n: int, count: int) -> dict:
    """pyinstrument over ``count`` in-process requests to each view; text reports in bench/results/."""
    from pyinstrument import Profiler

    paths = {
        "token": "/api/v1/token",
        "floor": "/bench/floor",
        "floor_prepared": "/bench/floor-prepared",
        "baseline": "/bench/baseline",
        "vault_only": "/bench/vault-only",
    }
    out = {}
    for name, path in paths.items():
        post = lambda path=path: client.post(  # noqa: E731
            path, data=TOKEN_BODY, content_type="application/json", headers={"Authorization": f"Bearer {key}"}
        )
        post()
        profiler = Profiler(interval=0.0002)
        started = time.perf_counter()
        with profiler:
            for _ in range(count):
                post()
        per_request_ms = (time.perf_counter() - started) / count * 1000
        report = RESULTS / f"profile-{name}-{n}.txt"
        report.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
        out[name] = {
            "ms_per_request_in_process": round(per_request_ms, 3),
            "report": str(report.relative_to(ROOT)),
        }
        log(f"  profile {name}: {per_request_ms:.2f} ms per in-process request -> {report.relative_to(ROOT)}")
    return out


# --- agent keys -----------------------------------------------------------------------------------------


def agents():
    from bench.views import agents_module

    return agents_module()


def bearer_for(user) -> str:
    """An agent key for ``user`` (GitHub only), or the stand-in bearer before agent keys exist."""
    module = agents()
    if module is None:
        from django.core import signing

        from bench.views import FALLBACK_SALT

        return signing.dumps(user.pk, salt=FALLBACK_SALT)
    _row, plaintext = module.create_agent_key(
        user=user, name="bench", providers=["github"], expires_in_days=30
    )
    return plaintext


def sample_users(count: int, n: int):
    from accounts.models import User

    step = max(1, n // count)
    names = [f"bench-{index}" for index in range(0, n, step)][:count]
    return list(User.objects.filter(username__in=names).order_by("pk"))


# --- HTTP measurements --------------------------------------------------------------------------------------


def _probe(port: int, path: str, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=TOKEN_BODY.encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def http_throughput(port: int, keys: list[str], args, token_api: bool) -> dict:
    endpoints = {"floor": "/bench/floor", "baseline": "/bench/baseline", "vault_only": "/bench/vault-only"}
    if token_api:
        endpoints["floor_prepared"] = "/bench/floor-prepared"
        endpoints["token"] = "/api/v1/token"
    for name, path in endpoints.items():
        status, body = _probe(port, path, keys[0])
        if status != 200 or (not name.startswith("floor") and not body.get("access_token")):
            raise RuntimeError(f"{path} answered {status} {body}")
    runs: dict[str, list[load.LoadResult]] = {name: [] for name in endpoints}
    names = list(endpoints)
    for name in names:  # warm-up: every worker has imported and connected
        load.run(
            f"http://127.0.0.1:{port}{endpoints[name]}",
            keys=keys,
            body=TOKEN_BODY,
            duration=1,
            connections=args.connections,
        )
    for round_number in range(args.rounds):
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in order:
            result = load.run(
                f"http://127.0.0.1:{port}{endpoints[name]}",
                keys=keys,
                body=TOKEN_BODY,
                duration=args.duration,
                connections=args.connections,
            )
            runs[name].append(result)
            log(
                f"  {name:9} round {round_number + 1}: {result.rps:8.1f} req/s  p50 {result.p50_ms:6.2f} ms  "
                f"p99 {result.p99_ms:6.2f} ms  errors {result.errors}"
            )
    summary = {name: load.median_result(results).as_dict() for name, results in runs.items()}
    out = {"endpoints": summary, "rounds": {n: [r.as_dict() for r in rs] for n, rs in runs.items()}}
    # Each ratio is the median of the per-round ratios: the two runs of a round are adjacent in time,
    # so a slow patch of the machine (other processes, a checkpoint) hits both and cancels out.
    pairs = [("baseline", "floor"), ("vault_only", "floor"), ("vault_only", "baseline")]
    if token_api:
        pairs = [("token", "floor"), ("token", "baseline"), ("token", "floor_prepared"), *pairs]
    for top, bottom in pairs:
        per_round = [round(a.rps / b.rps, 3) for a, b in zip(runs[top], runs[bottom], strict=True)]
        out[f"{top}_vs_{bottom}"] = round(statistics.median(per_round), 3)
        out[f"{top}_vs_{bottom}_rounds"] = per_round
    return out


def concurrent_refresh(port: int, real, key: str | None, count: int) -> dict:
    from bench.seed import expire
    from sandbox import state

    expire(real.token_set_id)
    state.reset("github")
    if key is not None:
        method, path, body = "POST", "/api/v1/token", TOKEN_BODY
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        via = "POST /api/v1/token"
    else:
        method, path, body = "GET", f"/bench/vault-token?user={real.user.pk}", None
        headers = {}
        via = "bench/vault-token (vault.get_access_token; token API not available yet)"
    started = time.perf_counter()
    answers = load.burst("127.0.0.1", port, count=count, method=method, path=path, headers=headers, body=body)
    seconds = time.perf_counter() - started
    failures = [repr(a) for a in answers if isinstance(a, BaseException)]
    ok = [a for a in answers if not isinstance(a, BaseException)]
    statuses: dict[str, int] = {}
    tokens = set()
    for answer in ok:
        statuses[str(answer.status)] = statuses.get(str(answer.status), 0) + 1
        if answer.status == 200:
            data = json.loads(answer.body)
            tokens.add(data.get("token_sha256") or hashlib.sha256(data["access_token"].encode()).hexdigest())
    return {
        "via": via,
        "requests": count,
        "statuses": statuses,
        "client_errors": failures[:5],
        "distinct_tokens": len(tokens),
        "workers_seen": len({a.worker for a in ok if a.worker}),
        "provider_refresh_calls": state.refresh_count("github"),
        "seconds": round(seconds, 3),
    }


# --- rotation -----------------------------------------------------------------------------------------------


def rotate(env: dict[str, str]) -> dict:
    from django.conf import settings

    from vault.models import TokenSet

    names = [entry.split(":", 1)[0] for entry in env["VAULT_KEYS"].split(",")]
    new_name = f"bench-{len(names) + 1}"
    env["VAULT_KEYS"] = f"{new_name}:{_vault_key()},{env['VAULT_KEYS']}"
    os.environ["VAULT_KEYS"] = env["VAULT_KEYS"]
    settings.VAULT_KEYS = env["VAULT_KEYS"]
    rows = TokenSet.objects.count()
    command = [sys.executable, "manage.py", "vault_rotate_keys"]
    idle = run_child([*command, "--dry-run"], env)
    result = run_child(command, env)
    if result["returncode"] != 0:
        raise RuntimeError(f"vault_rotate_keys failed:\n{result['output'][-2000:]}")
    rotated = TokenSet.objects.filter(key_name=new_name).count()
    work_seconds = max(1e-6, result["seconds"] - idle["seconds"])
    return {
        "rows": rows,
        "rotated": rotated,
        "seconds": round(result["seconds"], 3),
        "startup_seconds": round(idle["seconds"], 3),
        "rows_per_s": round(rotated / work_seconds, 1),
        "peak_rss_mb": round(result["max_rss_kb"] / 1024, 1),
        "startup_rss_mb": round(idle["max_rss_kb"] / 1024, 1),
        "summary": result["output"].strip().splitlines()[-1] if result["output"].strip() else "",
    }


# --- one size -----------------------------------------------------------------------------------------------


def measure_size(n: int, *, env: dict, args, special: dict) -> dict:
    from django.test import Client

    token_api = agents() is not None
    users = sample_users(args.keys, n)
    keys = [bearer_for(user) for user in users]
    out: dict = {"n": n, "token_api": token_api, "agent_keys": len(keys)}

    log(f"N={n:,}: queries")
    client = Client()
    if token_api:
        out["token_request"] = token_request_queries(client, keys[-1])
    one = connections_page_queries(Client(), users[-1])
    many = connections_page_queries(Client(), special["many"])
    out["connections_page"] = {"1": one, "25": many}

    if args.profile and token_api:
        if importlib.util.find_spec("pyinstrument") is None:
            log("  --profile needs pyinstrument (pip install pyinstrument); not profiling")
        else:
            out["profile"] = profile_requests(Client(), keys[-1], n, args.profile)

    log(f"N={n:,}: get_access_token vs primary-key fetch (in-process)")
    from vault.models import TokenSet

    token_set_id = TokenSet.objects.get(identity__user=users[-1]).pk
    out["in_process"] = in_process_rates(
        users[-1], token_set_id, seconds=args.inproc_seconds, rounds=args.rounds
    )

    provider_port, site_port, burst_port = free_port(), free_port(), free_port()
    server_env = {"SANDBOX_BASE_URL": f"http://127.0.0.1:{provider_port}"}
    with gunicorn(f"provider-{n}", port=provider_port, workers=1, threads=8, env=server_env):
        log(f"N={n:,}: HTTP throughput (gunicorn, 2 sync workers, {args.connections} connections)")
        with gunicorn(f"site-{n}", port=site_port, workers=2, env=server_env):
            out["http"] = http_throughput(site_port, keys, args, token_api)
        log(
            f"N={n:,}: {args.burst} concurrent requests on one expired token "
            f"(2 gthread workers x {-(-args.burst // 2)} threads)"
        )
        real = special["real"]
        real_key = bearer_for(real.user) if token_api else None
        with gunicorn(f"burst-{n}", port=burst_port, workers=2, threads=-(-args.burst // 2), env=server_env):
            out["concurrency"] = concurrent_refresh(burst_port, real, real_key, args.burst)

    log(f"N={n:,}: vault_rotate_keys")
    out["rotation"] = rotate(env)
    return out


# --- targets and output ---------------------------------------------------------------------------------


def check_targets(results: dict) -> list[dict]:
    sizes = [results["sizes"][key] for key in sorted(results["sizes"], key=int)]
    targets: list[dict] = []

    def add(name: str, passed: bool | None, detail: str) -> None:
        targets.append(
            {
                "target": name,
                "result": "N/A" if passed is None else "PASS" if passed else "MISS",
                "detail": detail,
            }
        )

    token_api = all(size["token_api"] for size in sizes)
    if token_api:
        floors = [size["http"]["token_vs_floor"] for size in sizes]
        bases = [size["http"]["token_vs_baseline"] for size in sizes]
        add(
            "token throughput >= 0.8 x floor",
            min(floors) >= MIN_TOKEN_VS_FLOOR,
            " / ".join(f"{v:.2f}" for v in floors),
        )
        add(
            "token throughput >= 0.9 x plaintext baseline",
            min(bases) >= MIN_TOKEN_VS_BASELINE,
            " / ".join(f"{v:.2f}" for v in bases),
        )
        counts = [size["token_request"].get("queries") for size in sizes]
        add(
            "queries per token request <= 3",
            all(c is not None and c <= MAX_TOKEN_QUERIES for c in counts),
            " / ".join(str(c) for c in counts),
        )
        add(
            "token request queries same at every N", len(set(counts)) == 1, " / ".join(str(c) for c in counts)
        )
    else:
        for name in (
            "token throughput >= 0.8 x floor",
            "token throughput >= 0.9 x plaintext baseline",
            "queries per token request <= 3",
            "token request queries same at every N",
        ):
            add(name, None, "token API not available yet")
    pages = [
        (size["connections_page"]["1"]["queries"], size["connections_page"]["25"]["queries"])
        for size in sizes
    ]
    add(
        "connections page queries same with 1 and 25 identities",
        all(a == b for a, b in pages),
        " / ".join(f"{a} vs {b}" for a, b in pages),
    )
    rss = [size["rotation"]["peak_rss_mb"] for size in sizes]
    flat = rss[-1] * 1024 <= max(rss[0] * 1024 * (1 + FLAT_RSS_TOLERANCE), rss[0] * 1024 + FLAT_RSS_SLACK_KB)
    add("rotation peak memory flat in N", flat, " / ".join(f"{v:.1f} MB" for v in rss))
    refreshes = [size["concurrency"]["provider_refresh_calls"] for size in sizes]
    consistent = all(
        size["concurrency"]["distinct_tokens"] == 1
        and size["concurrency"]["statuses"] == {"200": size["concurrency"]["requests"]}
        for size in sizes
    )
    both_workers = all(size["concurrency"]["workers_seen"] >= 2 for size in sizes)
    add(
        "one provider refresh for 50 concurrent requests",
        all(r == 1 for r in refreshes) and consistent and both_workers,
        " / ".join(str(r) for r in refreshes)
        + ("" if consistent else " (not every answer was 200 with one token)")
        + ("" if both_workers else " (only one worker process answered)"),
    )
    return targets


def write_markdown(results: dict, header: list[str], rows: list[list[str]]) -> None:
    """The same table as Markdown (``bench/results/latest.md``), for pasting into README.md."""
    m = results["machine"]
    lines = [
        f"Taken {results['taken_at'][:10]} on {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB "
        f"(load generator, PostgreSQL {str(m['postgresql'])[:2]} and Redis on the same machine); "
        f"Python {m['python']}, Django {m['django']}, gunicorn 2 sync workers, {m['load_generator']}.",
        "",
        "| | " + " | ".join(header[1:]) + " |",
        "|---|" + "---|" * (len(header) - 1),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "| target (issue 7) | result | figures |",
        "|---|---|---|",
        *(f"| {t['target']} | {t['result']} | {t['detail']} |" for t in results["targets"]),
    ]
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")


def print_table(results: dict) -> None:
    sizes = [results["sizes"][key] for key in sorted(results["sizes"], key=int)]
    header = ["", *[f"N={size['n']:,}" for size in sizes]]
    rows: list[list[str]] = []

    def row(label: str, values) -> None:
        rows.append([label, *values])

    for name, label in (
        ("token", "POST /api/v1/token"),
        ("floor", "floor view"),
        ("floor_prepared", "floor, API's own key query"),
        ("baseline", "plaintext baseline"),
        ("vault_only", "vault only (no API bookkeeping)"),
    ):
        if all(name in size["http"]["endpoints"] for size in sizes):
            row(f"{label}: req/s", [f"{size['http']['endpoints'][name]['rps']:.0f}" for size in sizes])
            row(
                f"{label}: p50 / p99 ms",
                ["{p50_ms:.1f} / {p99_ms:.1f}".format(**size["http"]["endpoints"][name]) for size in sizes],
            )
        else:
            row(f"{label}: req/s", ["token API not available yet" for _ in sizes])
    if all("token_vs_floor" in size["http"] for size in sizes):
        row("token / floor (throughput)", [f"{size['http']['token_vs_floor']:.2f}" for size in sizes])
        row("token / baseline (throughput)", [f"{size['http']['token_vs_baseline']:.2f}" for size in sizes])
        row(
            "token / floor with API's key query",
            [f"{size['http']['token_vs_floor_prepared']:.2f}" for size in sizes],
        )
    row("baseline / floor (throughput)", [f"{size['http']['baseline_vs_floor']:.2f}" for size in sizes])
    row("vault only / floor (throughput)", [f"{size['http']['vault_only_vs_floor']:.2f}" for size in sizes])
    row(
        "vault only / baseline (throughput)",
        [f"{size['http']['vault_only_vs_baseline']:.2f}" for size in sizes],
    )
    row(
        "get_access_token/s : pk fetch/s",
        [
            f"{size['in_process']['get_access_token_per_s']:.0f} : {size['in_process']['pk_fetch_per_s']:.0f}"
            f" = {size['in_process']['ratio']:.2f}"
            for size in sizes
        ],
    )
    row(
        "queries per get_access_token",
        [str(size["in_process"]["get_access_token_queries"]) for size in sizes],
    )
    row(
        "queries per token request",
        [str(size.get("token_request", {}).get("queries", "n/a")) for size in sizes],
    )
    row(
        "connections page queries (1 / 25 ids)",
        [
            f"{size['connections_page']['1']['queries']} / {size['connections_page']['25']['queries']}"
            for size in sizes
        ],
    )
    row(
        "vault_rotate_keys rows/s",
        [f"{size['rotation']['rows_per_s']:.0f} ({size['rotation']['rotated']:,} rows)" for size in sizes],
    )
    row("vault_rotate_keys peak RSS", [f"{size['rotation']['peak_rss_mb']:.1f} MB" for size in sizes])
    row(
        "50 concurrent on expired: refreshes",
        [
            "{provider_refresh_calls} ({workers_seen} workers, {distinct_tokens} token)".format(
                **size["concurrency"]
            )
            for size in sizes
        ],
    )
    write_markdown(results, header, rows)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print()
    m = results["machine"]
    print(f"linking_site benchmark, {results['taken_at']}")
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Python {m['python']}, "
        f"Django {m['django']}, PostgreSQL {m['postgresql']}; load: {m['load_generator']}; "
        f"cache: {results['config']['cache']}"
    )
    print(line)
    for r in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))
    print(line)
    print("targets (issue 7):")
    for target in results["targets"]:
        print(f"  {target['result']:4}  {target['target']}  [{target['detail']}]")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="1000,100000", help="users to seed, ascending (default 1000,100000)"
    )
    parser.add_argument("--duration", type=float, default=4, help="seconds per load run (default 4)")
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds per view; medians reported (5)"
    )
    parser.add_argument("--connections", type=int, default=4, help="concurrent load connections (default 4)")
    parser.add_argument("--keys", type=int, default=50, help="agent keys (users) the load rotates over (50)")
    parser.add_argument("--burst", type=int, default=50, help="concurrent requests on one expired token (50)")
    parser.add_argument(
        "--inproc-seconds", type=float, default=1.5, help="seconds per in-process rate run (1.5)"
    )
    parser.add_argument(
        "--cache", choices=("redis", "locmem"), default="redis", help="CACHE_URL kind (redis)"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="COUNT",
        help="also profile COUNT in-process requests per view with pyinstrument (if installed)",
    )
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator (auto: wrk if installed)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep-db", action="store_true", help=f"keep the {DB_NAME} database afterwards")
    parser.add_argument("--output", default=str(RESULTS / "latest.json"), help="where to write the JSON")
    args = parser.parse_args(argv)
    sizes = sorted(int(value) for value in args.sizes.split(","))

    load.PREFERRED = args.loadgen
    if args.loadgen == "wrk" and not load.have_wrk():
        sys.exit("wrk is not installed (apt-get install wrk, or make bench, which installs it).")
    check_services(args)
    # SIGTERM (a timeout, a kill) unwinds like Ctrl-C, so the servers stop and the database goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = prepare_environment(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    log(f"creating database {DB_NAME}")
    recreate_database()
    flush_redis(env)
    import django

    django.setup()
    from django.core.management import call_command

    from bench import seed

    try:
        call_command("migrate", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        if agents() is None:
            log(
                "token API not available yet (vault.agents.create_agent_key / authenticate_agent_key): "
                "the token endpoint is skipped; floor and baseline use a stand-in bearer check"
            )
        special = {
            "many": seed.user_with_identities("many", 25),
            "real": seed.user_with_sandbox_github("real"),
        }
        results: dict = {
            "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "config": {
                key: getattr(args, key)
                for key in ("duration", "rounds", "connections", "keys", "burst", "inproc_seconds", "cache")
            }
            | {"gunicorn": "2 sync workers (throughput); 2 gthread workers for the burst", "debug": False},
            "sizes": {},
        }
        seeded = 0
        for n in sizes:
            log(f"seeding users {seeded:,} .. {n - 1:,}")
            took = seed.seed_users(seeded, n - seeded, progress=_seed_progress)
            analyze()
            log(f"seeded {n - seeded:,} users in {took:.1f} s")
            seeded = n
            results["sizes"][str(n)] = measure_size(n, env=env, args=args, special=special)
            results["sizes"][str(n)]["seed_seconds"] = round(took, 1)
        results["targets"] = check_targets(results)
        results["peak_rss_self_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(results, indent=2, default=str) + "\n")
        print_table(results)
        log(f"wrote {args.output}")
    finally:
        if args.keep_db:
            # The kept database is only readable with this run's (throwaway) keys.
            env_file = RESULTS / "kept-env.json"
            env_file.write_text(json.dumps(env, indent=2) + "\n")
            env_file.chmod(0o600)
            log(f"kept database {DB_NAME}; its environment is in {env_file.relative_to(ROOT)}")
        else:
            drop_database()
    missed = [t for t in results["targets"] if t["result"] == "MISS"]
    return 1 if (missed and args.strict) else 0


def _seed_progress(done: int, total: int) -> None:
    if done == total or done % 20000 == 0:
        log(f"  seeded {done:,} of {total:,}")


if __name__ == "__main__":
    sys.exit(main())
