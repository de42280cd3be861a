# The two commands of the README:
#   make serve   install perilune into .venv and run the gateway on 127.0.0.1:8787
#   make test    install the test dependencies and run the whole suite (lint, types, tests)
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: serve test lint bench install clean clients

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

serve: $(VENV)/.installed
	$(VENV)/bin/perilune serve $(ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check perilune tests bench
	$(VENV)/bin/mypy perilune

test: $(VENV)/.installed-test
	bash scripts/test-deps.sh
	$(VENV)/bin/ruff check perilune tests bench
	$(VENV)/bin/mypy perilune
	$(VENV)/bin/pytest $(PYTEST_ARGS)

clients: $(VENV)/.installed-test  ## the client matrix: Python frameworks, Node SDKs, Vercel AI SDK, Claude Code
	bash clients/run.sh

bench: $(VENV)/.installed-test
	$(PY) -m bench.run $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
