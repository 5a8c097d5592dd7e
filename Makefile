# The two commands a new user needs. Each one creates or refreshes .venv from uv.lock first.
#   make demo   simulate two weeks, ingest, features, train, score, print top risk + campaign recall
#   make test   run the whole test suite (what CI runs)
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
PYTHON_VERSION ?= 3.11

.PHONY: demo test venv benchmark clean

$(UV):
	python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

venv: $(UV)
	$(UV) sync --frozen --extra test --python $(PYTHON_VERSION)

demo: venv
	$(UV) run --frozen --no-sync distillguard demo

test: venv
	$(UV) run --frozen --no-sync python -m pytest; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

benchmark: venv
	$(UV) run --frozen --no-sync python benchmarks/pipeline_throughput.py

clean:
	rm -rf lake_data lake_data_ground_truth demo_output
