# Strangler -- every target creates .venv and installs the project first (idempotent).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST := $(PY) -m pytest

.PHONY: install prereqs demo test test-unit test-integration test-e2e stress lint bench clean unleash

$(STAMP): pyproject.toml kits/flask/pyproject.toml kits/django/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(PY) -m pip install --quiet --disable-pip-version-check -e kits/flask -e kits/django
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/strangler demo

prereqs:  # Redis and PostgreSQL up, the Unleash server and Chromium installed (idempotent)
	@scripts/test-prereqs.sh

test: $(STAMP) prereqs
	$(PYTEST) tests

test-unit: $(STAMP)
	$(PYTEST) tests/unit

test-integration: $(STAMP) prereqs
	$(PYTEST) tests/integration

test-e2e: $(STAMP) prereqs
	$(PYTEST) tests/e2e

STRESS_RUNS ?= 5
stress: $(STAMP) prereqs  # the saturated stress test at full size, STRESS_RUNS times in a row
	@for i in $$(seq 1 $(STRESS_RUNS)); do \
	  echo "== stress run $$i of $(STRESS_RUNS)"; \
	  $(PYTEST) -q -s tests/e2e/test_stress_saturated.py || exit 1; \
	done

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy gateway flags adapters legacy_shop new_services strangler strangler_sdk testkit \
	  examples/django_trips/new_service examples/django_trips/legacy \
	  kits/django/strangler_django kits/flask/strangler_flask

unleash:  # the Unleash server the tests start (cached in ~/.cache/strangler; CI does this too)
	scripts/install-unleash.sh

bench: $(STAMP)
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .strangler build *.egg-info
