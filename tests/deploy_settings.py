"""Settings for the deployment tests' child processes (gunicorn, collectstatic, ``manage.py``).

The production settings, read from the environment the test gives the child, plus two things only a
test needs: a URLconf with a probe that calls ``vault.get_access_token`` (``tests.deploy_urls``),
and a ``STATIC_ROOT`` the test can point at a temporary folder. The site never loads this module.
"""

import os

from linking_site.settings import *  # noqa: F403

ROOT_URLCONF = "tests.deploy_urls"
if os.environ.get("DEPLOY_TEST_STATIC_ROOT"):
    STATIC_ROOT = os.environ["DEPLOY_TEST_STATIC_ROOT"]
# The sandbox's "slow" failure mode holds each refresh this long, so that concurrent requests
# really do overlap the one refresh in flight.
SANDBOX_SLOW_SECONDS = float(os.environ.get("DEPLOY_TEST_SLOW_SECONDS", "0.5"))
# The token API test sets a small per-key limit, to see it hold across worker processes.
if os.environ.get("DEPLOY_TEST_KEY_LIMIT"):
    VAULT_RATE_LIMITS = {"key": (int(os.environ["DEPLOY_TEST_KEY_LIMIT"]), 60)}
