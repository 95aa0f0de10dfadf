# Vigilus: `make run` starts it, `make test` runs the whole test suite (README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# `make lock` compiles on the oldest Python Vigilus supports, Debian 12's /usr/bin/python3 (3.11.2): pip-compile
# keeps a requirement with an environment marker only when the marker holds for the Python that compiles, and
# redis needs async-timeout below 3.11.3 (base.in asks for it with that marker).
LOCK_PYTHON ?= /usr/bin/python3
LOCK_VENV := .venv-lock
# No index URLs or find-links in the lock files: those of the machine that compiles are no business of the
# machines that install.
COMPILE := --quiet --generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links

.PHONY: run test lint lock clean-venv

run: $(VENV)/.base-installed
	$(PY) manage.py run

test: $(VENV)/.test-installed
	$(PY) tests/run_suite.py

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The venv's own pip installs the lock files as they are (Debian 12's 23.0 too); nothing unpinned is fetched.
$(PY):
	$(PYTHON) -m venv $(VENV)

# The project itself goes in last, editable and without its own dependency resolution: it puts the `vigilus`
# command into $(VENV)/bin, built by the setuptools that base.txt pinned (whose note on editable installs is
# about folders shadowing the package, which is what an editable install of this checkout means).
$(VENV)/.base-installed: requirements/base.txt pyproject.toml | $(PY)
	$(PIP) install --quiet --require-hashes -r requirements/base.txt
	PYTHONWARNINGS="ignore:Editable installation" $(PIP) install --quiet --no-deps --no-build-isolation --editable .
	touch $@

$(VENV)/.test-installed: $(VENV)/.base-installed requirements/test.txt
	$(PIP) install --quiet --require-hashes -r requirements/base.txt -r requirements/test.txt
	touch $@

# Re-pin every dependency (with hashes) after editing requirements/*.in. base.txt keeps the extras its
# dependents ask for (httpx[http2]): without them pip before 23.3 refuses a transitive `httpx[http2]` as unpinned.
lock: $(LOCK_VENV)/.installed
	cd requirements && ../$(LOCK_VENV)/bin/pip-compile $(COMPILE) --no-strip-extras base.in -o base.txt
	cd requirements && ../$(LOCK_VENV)/bin/pip-compile $(COMPILE) --strip-extras test.in -o test.txt
	cd requirements && ../$(LOCK_VENV)/bin/pip-compile $(COMPILE) --strip-extras dev.in -o dev.txt

$(LOCK_VENV)/.installed: requirements/dev.txt
	@$(LOCK_PYTHON) -c 'import sys; sys.exit(sys.version_info[:3] != (3, 11, 2))' 2>/dev/null || { \
	  echo "make lock compiles on Python 3.11.2 (Debian 12's python3), the oldest Vigilus supports;" \
	       "$(LOCK_PYTHON) is not it. Set LOCK_PYTHON=/path/to/python3.11.2." >&2; exit 1; }
	rm -rf $(LOCK_VENV)
	$(LOCK_PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --require-hashes -r requirements/dev.txt
	touch $@

clean-venv:
	rm -rf $(VENV) $(LOCK_VENV)
