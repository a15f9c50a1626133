"""Settings for the benchmark's servers: the site's own settings, plus two reference views.

Only ``bench/run.py`` points ``DJANGO_SETTINGS_MODULE`` here; the site never loads this module.
Everything else (DEBUG off, PostgreSQL, Redis, gunicorn) comes from the environment the benchmark
sets, exactly as a deployment would set it.
"""

from linking_site.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

# The benchmark collects static files (as a deployment does) into its own folder.
STATIC_ROOT = env.path("BENCH_STATIC_ROOT", default=str(BASE_DIR / "bench" / "results" / "static"))  # noqa: F405

# The load runs far past the agent API's per-key and per-user limits. The limits are still counted on
# every request (the same cache round trips), they just never refuse one.
# The two-hosts scenario (bench/two_hosts.py) sets BENCH_KEY_LIMIT to check that both processes share it.
VAULT_RATE_LIMITS = {
    "key": (env.int("BENCH_KEY_LIMIT", default=10**9), 60),  # noqa: F405
    "user": (10**9, 60),
    "auth_failure": (20, 300),
}
