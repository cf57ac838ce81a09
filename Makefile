# Two commands for a fresh machine: `make demo` and `make test`. Both create or reuse
# .venv and install what they need; installs are pinned by constraints/py<version>.txt.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYVER := $(shell $(PYTHON) -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null)
CONSTRAINTS := $(wildcard constraints/py$(PYVER).txt)
PIP_INSTALL := $(PY) -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
PYTEST_ARGS ?=
# Test processes (pytest-xdist); 0 runs the suite in this one.
PYTEST_WORKERS ?= 2
export AIRFLOW_HOME ?= $(CURDIR)/.airflow

.PHONY: demo test browser install install-airflow install-dev airflow es-local typecheck bench bench-quick bench-dedup clean help

help:
	@echo "make demo        one real Airflow run of the pipeline DAG on the bundled demo corpus (embedded defaults), kept in .demo/"
	@echo "make test        install, type-check, start Elasticsearch and PostgreSQL on loopback, run the suite"
	@echo "make airflow     Airflow UI + scheduler on 127.0.0.1:8080 running the DAGs in dags/"
	@echo "make es-local    run the local Elasticsearch test node in the foreground"
	@echo "make bench       every benchmark at full size (about 20 minutes; see bench/README.md)"
	@echo "make bench-quick benchmarks at CI sizes (a few minutes)"
	@echo "make bench-dedup the clustering benchmark at 1k, 10k and 100k articles"

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP_INSTALL) -e .
	@touch $@

$(VENV)/.installed-airflow: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP_INSTALL) -e ".[airflow]"
	@touch $@ $(VENV)/.installed

$(VENV)/.installed-dev: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP_INSTALL) -e ".[dev,airflow,postgres]"
	@touch $@ $(VENV)/.installed $(VENV)/.installed-airflow

install: $(VENV)/.installed
install-airflow: $(VENV)/.installed-airflow
install-dev: $(VENV)/.installed-dev

demo: install-airflow
	$(PY) scripts/airflow-demo

airflow: install-airflow
	VENV=$(VENV) scripts/airflow-standalone

test: install-dev browser
	$(VENV)/bin/mypy
	$(PY) scripts/es-node start --port 0
	$(PY) scripts/pg-node start --port 0
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS); status=$$?; \
	  $(PY) scripts/pg-node stop; $(PY) scripts/es-node stop; exit $$status

# The browser test drives Debian's chromium through its chromedriver (tests/web/test_web_serve.py).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || apt-get install -y chromium chromium-driver \
	  || echo "make test: could not install chromium and chromium-driver (apt-get install -y chromium chromium-driver, as root); the browser test will be skipped" >&2

es-local: install-dev
	$(PY) scripts/es-node run

typecheck: install-dev
	$(VENV)/bin/mypy

bench: install-dev
	$(PY) -m bench --full

bench-quick: install-dev
	$(PY) -m bench --quick

bench-dedup: install-dev
	$(PY) -m bench.dedup --sizes 1000,10000,100000

clean:
	rm -rf $(VENV) .cache/elasticsearch/run .cache/postgres/run build *.egg-info
