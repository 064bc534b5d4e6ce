# The README's two commands: `make dev` starts the local stack, `make test` runs every check.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
PROTOS := $(wildcard protos/wallet/v1/*.proto)
GEN_DIR := wallet/v1

.PHONY: dev test lint typecheck protos protos-check pytest java-check bench-write clean

dev: $(VENV)/.installed node_modules/.installed java-check
	$(BIN)/wallet dev

test: $(VENV)/.installed node_modules/.installed java-check lint typecheck protos-check
	$(BIN)/pytest

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

java-check:
	@command -v java >/dev/null || { \
	  echo "java not found: DynamoDB Local needs Java 17 or newer." >&2; \
	  echo "Install it with: apt-get install -y openjdk-17-jre-headless" >&2; exit 1; }

lint: $(VENV)/.installed node_modules/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	npx --no-install buf lint

typecheck: $(VENV)/.installed
	$(BIN)/mypy

# Regenerates the Python stubs (and their type stubs) from protos/.
protos: $(VENV)/.installed
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --grpc_python_out=. \
	  --mypy_out=. --mypy_grpc_out=. $(PROTOS)
	touch wallet/__init__.py $(GEN_DIR)/__init__.py

# Fails when the committed stubs differ from what protos/ generates.
protos-check: $(VENV)/.installed
	@tmp=$$(mktemp -d) && \
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$$tmp --grpc_python_out=$$tmp \
	  --mypy_out=$$tmp --mypy_grpc_out=$$tmp $(PROTOS) && \
	touch $$tmp/wallet/__init__.py $$tmp/$(GEN_DIR)/__init__.py && \
	diff -r -x __pycache__ -x __init__.py $$tmp/wallet wallet || \
	{ echo "Generated stubs are stale: run 'make protos' and commit the result." >&2; exit 1; }

bench-write: $(VENV)/.installed node_modules/.installed java-check
	$(BIN)/wallet bench write

clean:
	rm -rf $(VENV) node_modules .wallet-dev .mypy_cache .pytest_cache .ruff_cache
