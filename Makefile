# Vigilus: `make run` starts it, `make test` runs the whole test suite (README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: run test lint lock clean-venv

run: $(VENV)/.base-installed
	$(PY) manage.py run

test: $(VENV)/.test-installed
	$(PY) tests/run_suite.py

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.base-installed: requirements/base.txt | $(PY)
	$(PIP) install --quiet --require-hashes -r requirements/base.txt
	touch $@

$(VENV)/.test-installed: $(VENV)/.base-installed requirements/test.txt
	$(PIP) install --quiet --require-hashes -r requirements/base.txt -r requirements/test.txt
	touch $@

# Re-pin every dependency (with hashes) after editing requirements/*.in.
lock: | $(PY)
	$(PIP) install --quiet pip-tools
	cd requirements && ../$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras base.in -o base.txt
	cd requirements && ../$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras test.in -o test.txt
	cd requirements && ../$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras dev.in -o dev.txt

clean-venv:
	rm -rf $(VENV)
