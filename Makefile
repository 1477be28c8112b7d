# Gatehouse — developer entry points. `make run` and `make test` work from a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Two installs into one venv: `make run` needs only what serving needs; `make test` adds the
# test tools and the runtime extras the suite exercises (PostgreSQL, Redis). The test install
# is a superset, so it also marks the run install done.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
NPM_STAMP := tests/idp/node_modules/.installed
export GATEHOUSE_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export GATEHOUSE_TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test demo lint typecheck check clean install

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,postgres,redis]'
	touch $(TEST_STAMP) $(RUN_STAMP)

$(NPM_STAMP): tests/idp/package.json tests/idp/package-lock.json
	npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
	touch $(NPM_STAMP)

install: $(TEST_STAMP)

## Start the console on the embedded default (SQLite in ./.gatehouse) at http://127.0.0.1:8000
run: $(RUN_STAMP)
	$(VENV)/bin/gatehouse serve

## Run the whole test suite (SQLite and PostgreSQL, the real IdP, Chromium, nginx)
test: $(TEST_STAMP) $(NPM_STAMP)
	$(PY) -m pytest -n 2 --dist loadfile --durations=15

## Build the container image and run it with podman (root; bootstraps debian:bookworm-slim once)
.PHONY: image-test
image-test: $(TEST_STAMP) $(NPM_STAMP)
	$(PY) -m pytest -m image tests/image --durations=10

## A console configured and activated against the test IdP, with demo users
## (`make demo PORT=8010`, or GATEHOUSE_PORT; default 8000)
demo: $(TEST_STAMP) $(NPM_STAMP)
	$(PY) tests/idp/demo.py $(if $(PORT),--port $(PORT))

## ruff, and the import graph of src/gatehouse: no cycles, layers import downward only
lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(PY) -m pytest -q -p no:cacheprovider tests/test_architecture.py

typecheck: $(TEST_STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) tests/idp/node_modules .pytest_cache .mypy_cache .ruff_cache
