VENV ?= .venv
PY := $(VENV)/bin/python
SELFHEAL := $(VENV)/bin/selfheal
STAMP := $(VENV)/.installed

.PHONY: install bytecode lock demo dev test lint bench clean

# constraints.txt pins every package (the tools too), so a fresh clone installs what this one did.
$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The workflow sandbox re-imports a workflow's module for every run. pip writes bytecode for an
# installed package, but not for this editable checkout when PYTHONDONTWRITEBYTECODE is set; then
# every run would compile the module's source again. Up-to-date files are skipped.
bytecode: $(STAMP)
	$(PY) -m compileall -q selfheal workflows activities starter dashboard bench tests worker.py

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

demo: bytecode
	$(SELFHEAL) demo

dev: bytecode
	$(SELFHEAL) dev

test: bytecode
	bash .ci/ensure-test-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n 2 --dist loadgroup

# mypy checks every call between workflows and activities (the files: pyproject.toml [tool.mypy]).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: bytecode
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
