"""The benchmark's surroundings: its environment, its own PostgreSQL database, the servers it starts
(gunicorn, its own process group, always stopped), child commands with their peak memory, agent keys.

Everything the benchmark creates is named for it (database ``h9_bench_site`` and the ``h9_*`` ones
of the scale scenarios, Redis database 9), so it never touches the site's own data.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402

# The deployment tests' process helpers: free ports, waiting for /healthz, stopping a process group.
from tests.deploy_support import stop, wait_ready  # noqa: E402

RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent
PG_SERVER = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS_SERVER = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
DB_NAME = "h9_bench_site"
REDIS_DB = 9
TOKEN_BODY = json.dumps({"connection": "github"})


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def vault_key() -> str:
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
        "VAULT_KEYS": f"bench-1:{vault_key()}",
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


def admin_sql(*statements: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def recreate_database() -> None:
    admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', f'CREATE DATABASE "{DB_NAME}"')


def drop_database() -> None:
    from django.db import connections

    connections.close_all()
    admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


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
