# One entry point for people and CI. `make serve` and `make test` are the README's two commands;
# `make setup` alone builds the virtualenv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup assets serve test test-sqlite test-postgres lint schema bench clean

setup: $(STAMP) assets

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Browser assets from the npm registry. The install above already vendored them (the build
# backend does, for every install); this restores them if server/static/vendor was removed.
assets: $(STAMP)
	$(PY) -m server.assets

# `make serve PORT=8001 HOST=0.0.0.0` picks the address.
HOST ?= 127.0.0.1
PORT ?= 8000

serve: setup
	$(VENV)/bin/tasker serve --examples --host $(HOST) --port $(PORT)

# The whole suite on SQLite + the in-process broker, then again on PostgreSQL + Redis when
# TASKER_TEST_POSTGRES_URL is set (CI always sets it).
test: setup test-sqlite test-postgres

test-sqlite: $(STAMP)
	TASKER_TEST_BACKEND=sqlite $(PY) -m pytest $(PYTEST_ARGS)

test-postgres: $(STAMP)
	@if [ -n "$$TASKER_TEST_POSTGRES_URL" ]; then \
		TASKER_TEST_BACKEND=postgres $(PY) -m pytest $(PYTEST_ARGS); \
	else echo "TASKER_TEST_POSTGRES_URL unset: PostgreSQL pass skipped"; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy server graphql_schema rest_compat workers
	$(VENV)/bin/lint-imports

schema: $(STAMP)
	$(VENV)/bin/tasker schema > graphql_schema/schema.graphql

clean:
	rm -rf $(VENV) server/static/vendor tasker.db
