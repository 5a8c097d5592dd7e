# The two commands a new user needs, and the contributor's fast loop. Each creates or refreshes .venv from uv.lock first.
#   make demo   simulate two weeks, ingest, features, train, score, print top risk + campaign recall
#   make test   the prerequisites (.ci/prerequisites), the checks below, then the whole test suite (what CI runs)
#   make check  the checks and the fast tests, in under two minutes on a 2-core machine:
#                 ruff check          lint, the rule set in pyproject.toml [tool.ruff.lint] (each ignore with its reason)
#                 ruff format --check formatting (120 columns)
#                 mypy                types of lake/ compute/ features/ models/ jobs/ at the level [tool.mypy] documents
#                 lint-imports        the layering contract of [tool.importlinter]
#                 pytest              every test not marked slow, jvm or browser (markers: pyproject.toml)
SHELL := /bin/bash
PYTHON_VERSION ?= 3.11
PACKAGES := lake compute features models jobs console simulator airflow_dags
# uv from PATH when there is one; otherwise it is pip-installed below and run as a module.
UV ?= $(or $(shell command -v uv 2>/dev/null),python3 -m uv)

.PHONY: demo test test-jvm check lint typecheck layering fast-tests prerequisites venv chromium benchmark clean

venv:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv \
	  || python3 -m pip install --quiet --user uv \
	  || python3 -m pip install --quiet --user --break-system-packages uv
	$(UV) sync --frozen --extra test --extra airflow --extra spark --python $(PYTHON_VERSION)
	@# uv compiles what it installs ([tool.uv] compile-bytecode); the project is installed editable, so its own
	@# sources are compiled here: no process compiles them at start-up, even with PYTHONDONTWRITEBYTECODE set.
	$(UV) run --frozen --no-sync python -m compileall -q -j 0 $(PACKAGES) tests

demo: venv
	$(UV) run --frozen --no-sync distillguard demo

# The console's browser test drives Debian's chromium (Playwright's own browser download is not used).
chromium:
	@command -v chromium >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

# Everything, the JVM tests (marker `jvm`: JVM Spark + delta-spark as the driver of a two-worker standalone
# cluster, README "Running on a cluster") included: they need Java 17, and Maven Central once for delta-spark.
# pytest exits 5 when it collected nothing (a bad marker expression, a broken collection): that fails too.
# Test files are spread over PYTEST_WORKERS processes (pytest-xdist), a whole file per process (--dist loadfile), so
# a module's fixture (a simulated lake, an engine server) is built once: the JVM cluster, the demo lake and the
# Airflow lake then build side by side instead of one after another.
PYTEST_WORKERS ?= 2
test: prerequisites venv chromium lint typecheck layering
	$(UV) run --frozen --no-sync python -m pytest -n $(PYTEST_WORKERS) --dist loadfile; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

# Java 17, a chromium it can install, Maven Central the first time: one line each for what is missing.
prerequisites:
	@.ci/prerequisites

check: venv lint typecheck layering fast-tests

lint: venv
	$(UV) run --frozen --no-sync ruff check .
	$(UV) run --frozen --no-sync ruff format --check .

typecheck: venv
	$(UV) run --frozen --no-sync mypy

layering: venv
	$(UV) run --frozen --no-sync lint-imports

# A whole file per process, as in `make test`: a module's fixture (a small lake, its Spark results) is built once.
fast-tests: venv
	$(UV) run --frozen --no-sync python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m "not slow and not jvm and not browser"; \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

# Only the JVM tests, for iterating on them.
test-jvm: venv
	$(UV) run --frozen --no-sync python -m pytest -m jvm; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

benchmark: venv
	$(UV) run --frozen --no-sync python benchmarks/pipeline_throughput.py

clean:
	rm -rf lake_data lake_data_ground_truth demo_output
