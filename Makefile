VENV ?= .venv
PY := $(VENV)/bin/python
SELFHEAL := $(VENV)/bin/selfheal
STAMP := $(VENV)/.installed

.PHONY: install lock demo dev test lint bench clean

# constraints.txt pins every package (the tools too), so a fresh clone installs what this one did.
$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Re-pin after a dependency change in pyproject.toml: a fresh resolve, written to constraints.txt.
lock:
	rm -rf $(VENV).lock
	python3 -m venv $(VENV).lock
	$(VENV).lock/bin/python -m pip install --quiet --upgrade pip
	$(VENV).lock/bin/python -m pip install --quiet -e '.[test]'
	{ sed -n '/^#/p' constraints.txt; $(VENV).lock/bin/python -m pip freeze --exclude-editable \
	  | grep -v '^-e'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(VENV).lock

demo: $(STAMP)
	$(SELFHEAL) demo

dev: $(STAMP)
	$(SELFHEAL) dev

test: $(STAMP)
	bash .ci/ensure-test-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n 2 --dist loadgroup

# mypy checks every call between workflows and activities (the files: pyproject.toml [tool.mypy]).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/retry_overhead.py
	$(PY) bench/retry_success.py
	$(PY) bench/webhook.py
	$(PY) bench/rollback.py
	$(PY) bench/stuck_detection.py
	$(PY) bench/dashboard.py
	$(PY) bench/week.py
	$(PY) bench/scale_out.py

clean:
	rm -rf $(VENV) .selfheal .pytest_cache
