# wattserve developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
export WATTSERVE_CACHE ?= $(HOME)/.cache/wattserve

.PHONY: help install install-serving binaries lint typecheck test test-unit test-integration plan demo demo-down bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

install:  ## install wattserve (editable) with the test tools
	$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[dev,sim]'

install-serving:  ## install the serving data path (llama.cpp, Ray Serve, the SmolLM2 model)
	bash serving/install-deps.sh

binaries: install  ## build the local control plane's binaries from Go modules (cached)
	wattserve dev-cluster build

lint:  ## ruff over everything, mypy --strict over the pure core
	ruff check .
	MYPYPATH=operator mypy --strict -p wattserve.api -p wattserve.planning -p wattserve.contract -p wattserve.render -p wattserve.autoscale -p wattserve.simulate -p wattserve.controller

typecheck: lint

test-unit:  ## fast, pure tests
	$(PYTHON) -m pytest tests/unit -q

test-integration:  ## tests against a real API server (the dev cluster, or $$KUBECONFIG)
	$(PYTHON) -m pytest tests/integration -q -m integration

test: lint  ## everything CI runs: lint, types, unit, serving, chart, integration and e2e tests
	$(PYTHON) -m pytest -q

plan: install  ## place the example models on the example pools
	wattserve plan --pools examples/pools.yaml $(addprefix -f ,$(wildcard examples/models/*.yaml))

bench:  ## run the benchmarks whose figures docs/benchmarks.md records
	$(PYTHON) benchmarks/plan.py
