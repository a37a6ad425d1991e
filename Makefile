# Two commands matter: `make demo` (everything local, no server needed) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000
# The PostgreSQL + Redis layer of `make test` runs when DATABASE_URL points at PostgreSQL.
PG_URL := $(filter postgres%,$(DATABASE_URL))

.PHONY: install install-test demo test test-sqlite test-postgres lint fmt migrate bench clean podresources-proto

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,collector,kubernetes,integrations]"
	touch $(STAMP)

# The MLflow tracking server of the integration tests, in a venv of its own (deploy/mlflow/
# requirements.txt says why): the backend talks to it over HTTP and never imports MLflow.
MLFLOW_VENV := .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed

$(MLFLOW_STAMP): deploy/mlflow/requirements.txt
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install --quiet -r deploy/mlflow/requirements.txt
	touch $(MLFLOW_STAMP)

# What `make demo` needs; the tests also need the MLflow server's venv (858 MB, minutes to build),
# which a newcomer's first `make demo` should not wait for.
install: $(STAMP)
install-test: $(STAMP) $(MLFLOW_STAMP)

# Local SQLite + file broker whatever the shell exports; links in the demo's emails use its port.
# The demo's alert emails go to files under var/mail/ rather than flooding the console.
DEMO_ENV := env -u DATABASE_URL -u REDIS_URL SITE_URL=http://127.0.0.1:$(PORT) GREENKPI_DEMO=1 \
	EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend

demo: install
	$(DEMO_ENV) $(PY) manage.py migrate --verbosity 0
	$(DEMO_ENV) $(PY) manage.py collectstatic --noinput --verbosity 0
	$(DEMO_ENV) $(PY) manage.py load_demo
	@echo ""
	@echo "  GreenKPI demo: http://127.0.0.1:$(PORT)/   (admin: http://127.0.0.1:$(PORT)/admin/)"
	@echo "  Log in as admin / greenkpi-demo (or vision-lead, nlp-viewer; same password). Ctrl-C stops it."
	@echo "  Alert emails are written to var/mail/ (EMAIL_BACKEND=filebased)."
	@echo ""
	$(DEMO_ENV) GREENKPI_PORT=$(PORT) $(VENV)/bin/honcho --procfile Procfile.demo start

test: test-sqlite test-postgres

# Fast layer: SQLite in memory, Celery eager; no server needed.
test-sqlite: install-test
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest -m "not postgres and not redis" -q

# Real-service layer: the whole suite on PostgreSQL, Redis and real worker/server processes.
test-postgres: install-test
ifneq ($(PG_URL),)
	$(PY) -m pytest -q
else
	@echo "test-postgres: skipped (set DATABASE_URL=postgres://... and REDIS_URL=redis://... to run it)"
	@test "$(CI)" != "true" || (echo "CI=true needs DATABASE_URL=postgres://..." && exit 1)
endif

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	env -u DATABASE_URL $(PY) manage.py makemigrations --check --dry-run

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

migrate: install
	$(PY) manage.py migrate

bench: install
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) var/*.sqlite3* var/cache var/celery-broker var/staticfiles

# The kubelet pod-resources client, generated from the vendored api.proto (Kubernetes attribution).
PODRES := collectors/greenkpi_collector/sources/kubernetes/podresources_v1
podresources-proto: install
	$(PY) -m grpc_tools.protoc -Icollectors --python_out=collectors --pyi_out=collectors \
		--grpc_python_out=collectors $(PODRES)/api.proto
