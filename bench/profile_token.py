"""Profile the token request in-process: ``.venv/bin/python bench/profile_token.py [--requests 2000]``.

Its own database (``h9_profile``, dropped afterwards), a few users seeded as the benchmark seeds
them, Redis for the limits (database 9), then ``COUNT`` requests to ``POST /api/v1/token`` and to
the floor view with the API's own key query, each under ``cProfile``. Prints milliseconds per
request and the top functions by own time and by cumulative time, so "where did the time go"
has an answer before anything is changed (bench/README.md).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import env as bench_env

PATHS = {"token": "/api/v1/token", "floor_prepared": "/bench/floor-prepared"}


def profile(client, path: str, key: str, count: int, top: int, dump: str = "") -> tuple[float, str]:
    def post():
        return client.post(
            path,
            data=bench_env.TOKEN_BODY,
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}"},
        )

    for _ in range(50):
        assert post().status_code == 200
    started = time.perf_counter()
    for _ in range(count):
        post()
    plain_ms = (time.perf_counter() - started) / count * 1000
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        post()
    profiler.disable()
    if dump:
        profiler.dump_stats(dump)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return plain_ms, out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--dump", default="", help="also write <DUMP>-<view>.prof (pstats) files")
    args = parser.parse_args()
    bench_env.DB_NAME = "h9_profile"
    bench_env.prepare_environment(argparse.Namespace(cache="redis"))
    bench_env.recreate_database()
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from bench import seed

    try:
        call_command("migrate", verbosity=0)
        seed.seed_users(0, 200)
        bench_env.analyze()
        user = bench_env.sample_users(1, 200)[0]
        key = bench_env.bearer_for(user)
        for name, path in PATHS.items():
            dump = f"{args.dump}-{name}.prof" if args.dump else ""
            ms, report = profile(Client(), path, key, args.requests, args.top, dump)
            print(f"=== {name}: {ms:.3f} ms per in-process request (without the profiler)")
            print(report)
    finally:
        bench_env.drop_database()
    return 0


if __name__ == "__main__":
    sys.exit(main())
