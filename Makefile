# Two commands: `make run` (the whole service locally) and `make test` (every test).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed

.PHONY: setup browser run test lint bench clean

setup: $(STAMP_PY) $(STAMP_NODE)

browser:
	bash tools/ensure_chromium.sh

$(STAMP_PY): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

local.settings.json:
	cp local.settings.sample.json $@

run: setup local.settings.json
	$(PY) -m tools.run_local

lint: $(STAMP_PY)
	$(PY) -m ruff check .

test: setup browser lint
	$(PY) -m pytest

bench: setup
	$(PY) bench/import_time.py
	$(PY) bench/sandbox_getschedule.py
	$(PY) bench/availability.py
	$(PY) bench/booking.py
	$(PY) bench/background.py

clean:
	rm -rf $(VENV) node_modules .local .pytest_cache .ruff_cache
