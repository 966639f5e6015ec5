# Everything a fresh machine with only python3 needs: `make run` or `make test`.
PYTHON ?= python3
TOOLS := .tools
VENV := .venv
POETRY := $(TOOLS)/bin/poetry
PY := $(VENV)/bin/python
POETRY_VERSION := 2.5.1
EXPORT_PLUGIN_VERSION := 1.10.1
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install browser run test test-sqlite test-postgres lint format requirements bench-import clean

# Poetry lives in its own virtualenv so it never shares packages with the project.
$(POETRY):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check \
		"poetry==$(POETRY_VERSION)" "poetry-plugin-export==$(EXPORT_PLUGIN_VERSION)"

$(VENV)/.installed: $(POETRY) pyproject.toml poetry.lock
	$(POETRY) check --lock
	$(POETRY) sync --no-interaction --no-root
	touch $@

install: $(VENV)/.installed

# The web app on SQLite with the shipped bars, and a job worker beside it (bin/serve). On a
# database with nothing trained yet it queues the first-run demo; `make run DEMO=0` does not.
DEMO ?= 1
run: install
	$(PY) manage.py migrate --no-input
	$(PY) manage.py import_stocks
	$(PY) manage.py collectstatic --no-input -v0
	@if [ "$(DEMO)" != "0" ]; then $(PY) manage.py demo --if-empty; fi
	HOST=$(HOST) PORT=$(PORT) VENV=$(VENV) bin/serve

# Debian's Chromium for the browser tests: Playwright launches it by path (no browser download).
browser:
	@test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)

# The whole suite on SQLite, then every database test again on PostgreSQL.
test: install browser
	$(MAKE) test-sqlite
	$(MAKE) test-postgres

test-sqlite: install
	$(PY) -m pytest

test-postgres: install
	DATABASE_URL=$(POSTGRES_URL) $(PY) -m pytest -m django_db

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Elastic Beanstalk installs from requirements.txt; it is exported from poetry.lock.
requirements: $(POETRY)
	$(POETRY) export --without-hashes --format requirements.txt --output requirements.txt

bench-import: install
	$(PY) bench/import_benchmark.py

clean:
	rm -rf $(VENV) $(TOOLS) staticfiles test-artifacts
