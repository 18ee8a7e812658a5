# wattserve developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
export WATTSERVE_CACHE ?= $(HOME)/.cache/wattserve

.PHONY: help setup install install-serving binaries lint typecheck test test-unit test-integration plan demo demo-down bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

setup:  ## install everything the tests and the demo need (idempotent, cached; seconds when done)
	bash scripts/setup.sh

install:  ## install wattserve (editable) with the test tools
	$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[dev,sim]'

install-serving:  ## install the serving data path (llama.cpp, Ray Serve, the SmolLM2 model)
	bash serving/install-deps.sh

binaries: install  ## build the local control plane's binaries from Go modules (cached)
	wattserve dev-cluster build

lint:  ## ruff over everything, mypy --strict over every package (the list in pyproject.toml)
	$(PYTHON) -m ruff check .
	MYPYPATH=operator:serving $(PYTHON) -m mypy --strict -p wattserve.api -p wattserve.planning -p wattserve.contract -p wattserve.render -p wattserve.autoscale -p wattserve.reconcile -p wattserve.simulate -p wattserve.controller -p wattserve.cli -p wattserve.images -p wattserve.devcluster -p wattserve_activator -p wattserve_serving

typecheck: lint

test-unit:  ## fast, pure tests
	$(PYTHON) -m pytest tests/unit -q

test-integration:  ## tests against a real API server (the dev cluster, or $$KUBECONFIG)
	$(PYTHON) -m pytest tests/integration -q -m integration

test: setup  ## set up, then everything CI runs: lint, types, unit, serving, chart, integration, e2e
	$(MAKE) --no-print-directory lint
	$(PYTHON) -m pytest -q

demo: setup  ## set up, then the whole loop on this machine as a story (WATTSERVE_DEMO_QUICK=1: short load)
	$(PYTHON) -m e2e.demo up

demo-down:  ## stop what `make demo` left running and remove its cluster
	$(PYTHON) -m e2e.demo down

plan: install  ## place the example models on the example pools
	wattserve plan --pools examples/pools.yaml $(addprefix -f ,$(wildcard examples/models/*.yaml))

bench:  ## run the benchmarks whose figures docs/benchmarks.md records
	$(PYTHON) benchmarks/plan.py
