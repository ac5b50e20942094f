# Two commands: `make run` (the whole service locally) and `make test` (every test).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed
# The Bicep / shell checkers of tests/infra live in their own environment (their pins clash).
INFRA_VENV := infra/.venv
STAMP_INFRA := $(INFRA_VENV)/.installed

.PHONY: setup browser faketime infra-tools run test test-future lint bench fuzz clean

setup: $(STAMP_PY) $(STAMP_NODE) $(STAMP_INFRA)

browser:
	bash tools/ensure_chromium.sh && bash tools/ensure_firefox.sh

faketime:
	bash tools/ensure_faketime.sh

$(STAMP_PY): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

infra-tools: $(STAMP_INFRA)

$(STAMP_INFRA): infra/requirements.txt
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements.txt
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

# The clock offsets (libfaketime) `make test-future` runs the unit and integration tests at.
OFFSETS ?= +45d +400d

test: setup browser lint
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-future

test-future: setup faketime
	OFFSETS="$(OFFSETS)" PY=$(PY) bash tools/test_future.sh

fuzz: setup
	FUZZ_EXAMPLES=1500 $(PY) -m pytest tests/fuzz -s

bench: setup
	$(PY) bench/import_time.py
	$(PY) bench/sandbox_getschedule.py
	$(PY) bench/availability.py
	$(PY) bench/booking.py
	$(PY) bench/booking_hosts.py
	$(PY) bench/background.py
	$(PY) bench/background_scale.py
	$(PY) bench/load.py
	$(PY) bench/auth.py
	$(PY) bench/notifications.py
	$(PY) bench/listing.py

clean:
	rm -rf $(VENV) $(INFRA_VENV) node_modules .local .pytest_cache .ruff_cache
