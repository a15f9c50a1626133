# Two commands on a fresh clone: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# `make run PORT=8001` writes the port to .env; a later plain `make run` keeps using it.
PORT ?= $(or $(shell sed -n 's/^PORT=//p' .env 2>/dev/null | tail -n 1),8000)
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test setup browser xmlsec1 oidc-provider axe-core lint format bench clean

# Runtime and development locks, both hash-checked (a deployment installs requirements.lock only).
$(VENV)/.installed: requirements.lock requirements-dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock -r requirements-dev.lock
	touch $@

setup: $(VENV)/.installed

# Browser tests drive Debian's Chromium (never a downloaded browser build).
browser:
	@test -x $(CHROMIUM) || { echo "Installing Chromium from Debian packages..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
	  || { echo "Could not install chromium: run 'apt-get install chromium' as root."; exit 1; }; }

# The SAML interop tests run a pysaml2 identity provider, which signs with Debian's xmlsec1 binary
# (the site itself uses the python xmlsec binding and needs no binary).
xmlsec1:
	@command -v xmlsec1 >/dev/null || { echo "Installing xmlsec1 from Debian packages..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xmlsec1) >/dev/null \
	  || { echo "Could not install xmlsec1: run 'apt-get install xmlsec1' as root."; exit 1; }; }

# The OpenID Connect interoperability tests run the `oidc-provider` npm package (locked in
# tests/oidc/package-lock.json); the test fixture also installs it when missing.
oidc-provider:
	@command -v node >/dev/null || { echo "Node.js is needed for the OpenID Connect tests (apt-get install nodejs npm)."; exit 1; }
	@test -d tests/oidc/node_modules || npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error

# The accessibility test injects axe-core (locked in tests/a11y/package-lock.json) into Chromium.
axe-core:
	@command -v node >/dev/null || { echo "Node.js is needed for the accessibility test (apt-get install nodejs npm)."; exit 1; }
	@test -d tests/a11y/node_modules || npm ci --prefix tests/a11y --no-audit --no-fund --loglevel=error

run: setup
	@DEBUG=on $(PY) manage.py dev_setup --port $(PORT)
	@$(PY) manage.py migrate --noinput -v 0
	@echo
	@echo "  linking_site is starting on http://127.0.0.1:$(PORT)/ with the sandbox providers."
	@echo "  Sign in: open that address, press 'Continue with Google' or 'Continue with GitHub',"
	@echo "           type any email and name on the sandbox page, press Allow."
	@echo "  Staff:   $(PY) manage.py createsuperuser   then sign in at /staff/login/ or /admin/."
	@echo
	@$(PY) manage.py runserver 127.0.0.1:$(PORT)

test: setup browser xmlsec1 oidc-provider axe-core
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Benchmark (bench/README.md): PostgreSQL and Redis must be up; wrk is Debian's load generator.
# A million users: make bench BENCH_ARGS="--sizes 1000,100000,1000000" (long: seeding and rotation).
bench: setup
	@command -v wrk >/dev/null || { echo "Installing wrk from Debian packages..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) >/dev/null \
	  || echo "Could not install wrk: the benchmark uses its own Python load generator instead."; }
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-* staticfiles
