# Vigil — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

.PHONY: install run test lint format schema bench clean servers audit

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Redis and PostgreSQL from the OS packages, when no URL says where they are.
servers:
	@deploy/local/ensure-servers.sh

# CLUSTER=1: on a local 3-master Redis Cluster started from redis-server (see docs/operations.md).
run: install servers
	$(BIN)/vigil demo $(if $(CLUSTER),--cluster)

test: install servers
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/vigil schema export --check
	$(BIN)/vigil config schema --check
	$(BIN)/vigil config reference --check
	@$(MAKE) --no-print-directory audit

# Known vulnerabilities in the installed dependencies: pip-audit asks PyPI's advisory
# service, so it needs the network, and fails when it cannot reach it. A dependency whose
# version PyPI does not know (a private index) cannot be looked up: counted in a warning,
# or a failure with AUDIT_FLAGS=--strict.
AUDIT_FLAGS ?=
audit: install
	@mkdir -p .vigil
	@$(BIN)/pip-audit --skip-editable --progress-spinner off $(AUDIT_FLAGS) \
	  > .vigil/audit.txt 2>&1; status=$$?; \
	grep -v "could not be audited" .vigil/audit.txt; \
	skipped=$$(grep -c "could not be audited" .vigil/audit.txt); \
	if [ $$status -ne 0 ]; then \
	  echo "make audit: FAILED - a known vulnerability (listed above), the advisory" \
	       "service unreachable, or (--strict) a dependency not looked up" >&2; exit 1; fi; \
	if [ $$skipped -gt 0 ]; then \
	  echo "make audit: WARNING - $$skipped dependencies could not be looked up on PyPI" \
	       "(not audited; list: .vigil/audit.txt)" >&2; fi

# Benchmarks print figures and write docs/performance.md; BENCH_ARGS=--quick for a CI
# smoke run (checks that they run, not their speed; writes nothing).
bench: install servers
	$(BIN)/python -m tests.bench $(if $(findstring --quick,$(BENCH_ARGS)),,--write docs/performance.md) $(BENCH_ARGS)

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: install
	$(BIN)/vigil schema export

clean:
	rm -rf $(VENV) .vigil .pytest_cache .mypy_cache .ruff_cache
