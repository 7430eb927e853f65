# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing, installs the package and java when missing;
# `make test` also installs chromium and its driver (the dashboard's browser tests).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench java chromium check-models check-mutants conformance-full mutants clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "java not found: installing default-jre-headless (TLC needs a JVM)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq default-jre-headless; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo apt-get install -y -qq default-jre-headless; \
	  else echo "error: java is missing and this user cannot apt-get install default-jre-headless; install a Java 11+ runtime and retry" >&2; exit 1; fi; }

chromium:
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
	  echo "chromium or chromedriver not found: installing chromium and chromium-driver (the dashboard's browser tests)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium chromium-driver; \
	  else echo "error: chromium is missing and this user cannot apt-get install chromium chromium-driver; install them (or another chromium with its chromedriver on PATH) and retry" >&2; exit 1; fi; }

# Tests that start no OS process (model checks, cores, the in-memory
# cluster) run one per core; then those that time real processes
# (tests/conftest.py marks them) run alone. Both parts run; either failing fails.
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: $(STAMP) java chromium
	@status=0; \
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist worksteal -m "not processes" || status=1; \
	$(PY) -m pytest -q -m processes || status=1; \
	exit $$status

demo: $(STAMP) java
	$(PY) -m ownership.demo

# Every Large config, and the configs whose mutants run in make test but
# whose clean checks are left out of it for time.
check-models: $(STAMP) java
	$(VENV)/bin/ownership check --all --config Large
	$(VENV)/bin/ownership check Ownership --config Put
	$(VENV)/bin/ownership check Ownership --config Actor
	$(VENV)/bin/ownership check Scheduling --config OwnerCrash
	$(VENV)/bin/ownership check Scheduling --config Requests
	$(VENV)/bin/ownership check OwnerRecovery --config Inline

# Every spec mutant, the slow liveness ones ("ci": false in spec/*.json) too.
check-mutants: $(STAMP) java
	OWNERSHIP_SPEC_MUTANTS=all $(PY) -m pytest -q tests/spec -k mutant

# Edge covers too big to commit, generated and replayed here (minutes, not in CI):
# Scheduling Medium (crashes anywhere) and RefCounting TwoTasks (two tasks).
CONFORMANCE_OUT ?= /tmp/ownership-conformance-full
conformance-full: $(STAMP) java
	rm -rf $(CONFORMANCE_OUT)
	$(VENV)/bin/ownership traces generate Scheduling --config Medium --no-tests --out $(CONFORMANCE_OUT)
	$(VENV)/bin/ownership traces generate RefCounting --config TwoTasks --no-tests --out $(CONFORMANCE_OUT)
	$(VENV)/bin/ownership conformance run --no-shrink $(CONFORMANCE_OUT)

# Every planted bug (tests/mutants/*.toml), each in a copy of the tree: the
# core's against the conformance corpus and the scenario, core and API
# tests, the transport's against the TCP and frame-fuzzing tests; one job
# per core unless MUTANT_JOBS says otherwise (minutes, not in CI: a fast
# subset runs in tests/mutants/test_mutants.py). Fails while any survives.
MUTANT_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
MUTANTS_REPORT ?= /tmp/ownership-mutants.json
mutants: $(STAMP)
	$(PY) tests/mutants/run.py --jobs $(MUTANT_JOBS) --json $(MUTANTS_REPORT) $(MUTANTS)

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(VENV)/bin/ownership bench

clean:
	rm -rf $(VENV) build *.egg-info
