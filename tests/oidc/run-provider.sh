#!/usr/bin/env sh
# Run the interop tests' OpenID Connect provider (oidc-provider) by hand, to try OpenID Connect with
# `make run`. Any login and password sign in; the login becomes the subject. See docs/oidc.md.
#
#   tests/oidc/run-provider.sh     # issuer http://127.0.0.1:9400, client linking-site / dev-secret
#
# OIDC_PORT and SITE_URL (default http://127.0.0.1:8000) change the port and the site it serves.
set -eu
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "Node.js is needed (apt-get install nodejs npm)." >&2; exit 1; }
[ -f node_modules/oidc-provider/package.json ] || npm ci --no-audit --no-fund --loglevel=error
SITE="${SITE_URL:-http://127.0.0.1:8000}"
export OIDC_TEST_PORT="${OIDC_PORT:-9400}"
export OIDC_TEST_ADMIN_TOKEN="${OIDC_TEST_ADMIN_TOKEN:-dev-admin-token}"
export OIDC_TEST_CLIENTS="[{\"client_id\":\"linking-site\",\"client_secret\":\"dev-secret\",\"redirect_uris\":[\"${SITE}/complete/oidc/\"]}]"
echo "Provider for ${SITE}: run the site with DEBUG=on and"
echo "  SOCIAL_AUTH_OIDC_OIDC_ENDPOINT=http://127.0.0.1:${OIDC_TEST_PORT}"
echo "  SOCIAL_AUTH_OIDC_KEY=linking-site SOCIAL_AUTH_OIDC_SECRET=dev-secret"
exec node provider.mjs
