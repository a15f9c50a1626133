"""The benchmark: ``make bench`` (or ``.venv/bin/python bench/run.py --help``). See bench/README.md.

It creates its own PostgreSQL database (dropped and created again on every run), seeds N users with
identities and encrypted token sets, serves the site with gunicorn (2 workers, DEBUG off, Redis
cache, the sandbox providers on a separate gunicorn process standing in for GitHub), and measures,
as ratios so that machine noise cancels:

* ``POST /api/v1/token`` (a fresh token) against the floor with the API's own key query (issue 17's
  first target), the ORM floor and the plaintext baseline, with p50/p99 at 4 and 32 connections;
* queries per token request and per connections page, and the ``EXPLAIN`` plans of the hot statements;
* ``vault_rotate_keys`` and ``vault_refresh`` (against the sandbox): rows per second, peak memory;
* 50 concurrent requests on one expired token: refresh calls that reached the provider;
* the activity table seeded to millions of rows: token request and activity pages, retention;
* two hosts (two gunicorn processes, one PostgreSQL, one Redis): limits, refresh, sessions.

It prints a table (PASS/MISS for each target of issues 7 and 17) and writes ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import env as bench_env
from bench import inprocess, load, scale, throughput
from bench.env import RESULTS, bearer_for, gunicorn, log
from bench.report import check_targets
from bench.table import print_table
from bench.two_hosts import two_hosts
from tests.deploy_support import free_port


def records_on_file() -> int:
    """Token hand-outs in the activity table."""
    from activity.models import Activity

    return Activity.objects.filter(kind="token_issued").count()


def measure_size(n: int, *, env: dict, args, special: dict, last: bool) -> dict:
    from django.test import Client

    from vault import staged_records
    from vault.models import TokenSet

    token_api = bench_env.agents() is not None
    users = bench_env.sample_users(args.keys, n)
    keys = [bearer_for(user) for user in users]
    out: dict = {"n": n, "token_api": token_api, "agent_keys": len(keys)}

    log(f"N={n:,}: queries and plans")
    if token_api:
        out["token_request"] = inprocess.token_request_queries(Client(), keys[-1])
    one = inprocess.connections_page_queries(Client(), users[-1])
    many = inprocess.connections_page_queries(Client(), special["many"])
    out["connections_page"] = {"1": one, "25": many}
    out["plans"] = inprocess.hot_plans(key=keys[-1], user=users[-1], many=special["many"])
    out["plans_index_only"] = inprocess.plans_index_only(out["plans"])

    log(f"N={n:,}: get_access_token vs primary-key fetch (in-process)")
    token_set_id = TokenSet.objects.get(identity__user=users[-1]).pk
    out["in_process"] = inprocess.in_process_rates(
        users[-1], token_set_id, seconds=args.inproc_seconds, rounds=args.rounds
    )

    provider_port, site_port, burst_port = free_port(), free_port(), free_port()
    server_env = {"SANDBOX_BASE_URL": f"http://127.0.0.1:{provider_port}"}
    with gunicorn(f"provider-{n}", port=provider_port, workers=2, threads=8, env=server_env):
        log(f"N={n:,}: HTTP throughput (gunicorn, {args.workers} sync workers, {args.connections} conns)")
        staged_records.drain_all()  # what the in-process measurements above staged
        issued_before = records_on_file()
        with gunicorn(f"site-{n}", port=site_port, workers=args.workers, env=server_env):
            out["http"] = throughput.http_throughput(site_port, keys, args, token_api)
        if token_api:
            # The workers moved their staged records as they went, and what was left as they stopped.
            out["http"]["records"] = {
                "token_answers": out["http"]["token_answers"],
                "rows_added": records_on_file() - issued_before,
                "still_staged": staged_records.waiting(),
                "in_flight_bound": out["http"]["token_in_flight_bound"],
            }
        threads = -(-args.burst // 2)
        log(f"N={n:,}: {args.burst} concurrent requests on one expired token (2 gthread workers x {threads})")
        real = special["real"]
        real_key = bearer_for(real.user) if token_api else None
        with gunicorn(f"burst-{n}", port=burst_port, workers=2, threads=threads, env=server_env):
            out["concurrency"] = throughput.concurrent_refresh(burst_port, real, real_key, args.burst)
        if last and token_api and "two-hosts" not in args.skip:
            try:
                out["two_hosts"] = two_hosts(
                    server_env=server_env, special=special, users=users, burst=args.burst
                )
            except Exception as error:  # reported as not run, with the reason; the rest stands
                log(f"two-hosts scenario failed: {type(error).__name__}: {error}")
        if "refresh" not in args.skip:
            count = min(n, args.refresh_sets)
            log(f"N={n:,}: vault_refresh over {count:,} due token sets, {args.refresh_workers} workers")
            try:
                out["refresh"] = scale.refresh_at_size(
                    {**env, **server_env}, count=count, workers=args.refresh_workers
                )
            except Exception as error:  # reported as not run, with the reason; the rest stands
                log(f"refresh scenario failed: {type(error).__name__}: {error}")
                out["refresh_error"] = f"{type(error).__name__}: {str(error)[:300]}"

    if "rotation" not in args.skip:
        log(f"N={n:,}: vault_rotate_keys")
        out["rotation"] = scale.rotate(env, batch_size=args.rotate_batch)
    return out


def measure_activity(*, args, env: dict, special: dict, n: int) -> dict:
    """Token request and activity pages before and after seeding ``--activity-rows`` rows (the last
    60 days, plus one whole month past the retention), then ``activity_retention`` drops that month."""
    from datetime import timedelta

    from django.conf import settings
    from django.test import Client
    from django.utils import timezone

    from activity import partitions

    person = bench_env.sample_users(1, n)[0]
    key = bearer_for(person)
    empty = scale.activity_costs(client=Client(), key=key, person=person)
    now = timezone.now()
    retention_days = int(getattr(settings, "ACTIVITY_RETENTION_DAYS", 400))
    old = partitions.Month.of(now - timedelta(days=retention_days + 40))
    made = scale.make_months(start=now - timedelta(days=61), end=now)
    made += scale.make_months(start=old.start, end=old.start)
    log(f"activity: seeding {args.activity_rows:,} rows by SQL (months made: {', '.join(made) or 'none'})")
    seconds = scale.seed_activity(args.activity_rows, heavy_user_id=person.pk)
    month_rows = max(1, args.activity_rows // 12)
    log(f"activity: seeding {old.label}, {month_rows:,} rows, past the {retention_days}-day retention")
    seconds += scale.seed_activity(
        month_rows,
        heavy_user_id=person.pk,
        days=27,
        older_than_days=(now - old.end).days + 1,
    )
    seeded = scale.activity_costs(client=Client(), key=key, person=person)
    bench_env.analyze()
    plans = inprocess.hot_plans(key=key, user=person, many=special["many"])
    log("activity: retention")
    kept = scale.retention(env)
    kept["month"] = old.label
    kept["month_rows"] = month_rows
    return {
        "rows": args.activity_rows + month_rows,
        "seed_seconds": round(seconds, 1),
        "empty": empty,
        "seeded": seeded,
        "retention": kept,
        "plans": plans,
        "plans_index_only": inprocess.plans_index_only(plans),
    }


def parse(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--sizes", default="1000,100000", help="users to seed, ascending (default 1000,100000; add 1000000)")
    add("--duration", type=float, default=4, help="seconds per load run (default 4)")
    add("--rounds", type=int, default=5, help="interleaved rounds per view; medians reported (5)")
    add("--connections", type=int, default=4, help="concurrent load connections for the ratios (default 4)")
    add("--keys", type=int, default=50, help="agent keys (users) the load rotates over (50)")
    add("--burst", type=int, default=50, help="concurrent requests on one expired token (50)")
    add("--inproc-seconds", type=float, default=1.5, help="seconds per in-process rate run (1.5)")
    add("--cache", choices=("redis", "locmem"), default="redis", help="CACHE_URL kind (redis)")
    add("--refresh-sets", type=int, default=100_000, help="due sets for vault_refresh, at most N (100000)")
    add("--refresh-workers", type=int, default=8, help="vault_refresh --workers (8)")
    add("--rotate-batch", type=int, default=500, help="vault_rotate_keys --batch-size (500)")
    add("--activity-rows", type=int, default=10_000_000, help="activity rows seeded after the last size")
    add(
        "--workers",
        type=int,
        default=2 * (os.cpu_count() or 1),
        help="gunicorn sync workers for the throughput runs (default 2 x cores, as docs/deploy.md says)",
    )
    add("--skip", default="", help="comma-separated: activity, refresh, two-hosts, rotation")
    add("--loadgen", choices=("auto", "wrk", "python"), default="auto", help="load generator (auto: wrk)")
    add("--strict", action="store_true", help="exit 1 when a target is missed")
    add("--keep-db", action="store_true", help=f"keep the {bench_env.DB_NAME} database afterwards")
    add("--output", default=str(RESULTS / "latest.json"), help="where to write the JSON")
    args = parser.parse_args(argv)
    args.skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.monotonic()
    sizes = sorted(int(value) for value in args.sizes.split(","))
    load.PREFERRED = args.loadgen
    if args.loadgen == "wrk" and not load.have_wrk():
        sys.exit("wrk is not installed (apt-get install wrk, or make bench, which installs it).")
    bench_env.check_services(args)
    # SIGTERM (a timeout, a kill) unwinds like Ctrl-C, so the servers stop and the database goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = bench_env.prepare_environment(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    log(f"creating database {bench_env.DB_NAME}")
    bench_env.recreate_database()
    bench_env.flush_redis(env)
    import django

    django.setup()
    from django.core.management import call_command

    from bench import seed

    results: dict = {}
    try:
        call_command("migrate", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        special = {
            "many": seed.user_with_identities("many", 25),
            "real": seed.user_with_sandbox_github("real"),
        }
        results = {
            "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": bench_env.machine(),
            "config": {
                key: getattr(args, key)
                for key in ("duration", "rounds", "connections", "keys", "burst", "inproc_seconds", "cache")
            }
            | {
                "gunicorn": f"{args.workers} sync workers (throughput); 2 gthread workers for the burst",
                "debug": False,
            },
            "sizes": {},
            "output": args.output,
        }
        seeded = 0
        for n in sizes:
            log(f"seeding users {seeded:,} .. {n - 1:,}")
            took = seed.seed_users(seeded, n - seeded, progress=_seed_progress)
            started_keys = time.monotonic()
            seed.seed_agent_keys()
            took += time.monotonic() - started_keys
            bench_env.analyze()
            log(f"seeded {n - seeded:,} users in {took:.1f} s")
            seeded = n
            size = measure_size(n, env=env, args=args, special=special, last=n == sizes[-1])
            size["seed_seconds"] = round(took, 1)
            if "two_hosts" in size:
                results["two_hosts"] = size.pop("two_hosts")
            results["sizes"][str(n)] = size
            _write(results, args.output)  # what is measured survives a later failure
        if args.activity_rows and "activity" not in args.skip:
            try:
                results["activity"] = measure_activity(args=args, env=env, special=special, n=sizes[-1])
            except Exception as error:  # reported as not run, with the reason; the rest stands
                log(f"activity scenario failed: {type(error).__name__}: {error}")
                results["activity_error"] = f"{type(error).__name__}: {str(error)[:300]}"
        results["targets"] = check_targets(results)
        results["peak_rss_self_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        results["wall_seconds"] = round(time.monotonic() - started, 1)
        _write(results, args.output)
        print_table(results)
        log(f"wrote {args.output}")
    finally:
        if args.keep_db:
            # The kept database is only readable with this run's (throwaway) keys.
            env_file = RESULTS / "kept-env.json"
            env_file.write_text(json.dumps(env, indent=2) + "\n")
            env_file.chmod(0o600)
            log(f"kept database {bench_env.DB_NAME}; its environment is in {env_file.name}")
        else:
            bench_env.drop_database()
    missed = [t for t in results.get("targets", []) if t["result"] == "MISS"]
    return 1 if (missed and args.strict) else 0


def _write(results: dict, output: str) -> None:
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(results, indent=2, default=str) + "\n")


def _seed_progress(done: int, total: int) -> None:
    if done == total or done % 20000 == 0:
        log(f"  seeded {done:,} of {total:,}")


if __name__ == "__main__":
    sys.exit(main())
