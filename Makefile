VENV ?= .venv
PY := $(VENV)/bin/python
SELFHEAL := $(VENV)/bin/selfheal
STAMP := $(VENV)/.installed

.PHONY: install demo dev test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(SELFHEAL) demo

dev: $(STAMP)
	$(SELFHEAL) dev

test: $(STAMP)
	bash .ci/ensure-postgres
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) bench/retry_overhead.py
	$(PY) bench/retry_success.py
	$(PY) bench/webhook.py
	$(PY) bench/rollback.py
	$(PY) bench/stuck_detection.py

clean:
	rm -rf $(VENV) .selfheal .pytest_cache
