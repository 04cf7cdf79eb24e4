# grocery-ml-containers: four Python ML images from three Dockerfile variants, hash-locked,
# hermetic and measured. `make` (or `make help`) lists the targets; every variable below can
# be overridden: `make images ENGINE=podman VARIANTS=uv`.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules --no-print-directory

ifneq ($(filter 3.80 3.81,$(MAKE_VERSION)),)
$(error GNU Make $(MAKE_VERSION) is too old for this Makefile (it needs 3.82 or newer): on macOS `brew install make`, then run `gmake`)
endif

# ---- host tools -----------------------------------------------------------------------
# PYTHON runs the build tooling: any CPython 3.11 or newer (the images carry their own).
# VENV_PYTHON makes the test venv, which installs the images' locks: CPython 3.11 on Linux
# x86_64 only (`make images` needs no venv).
PYTHON ?= python3
VENV_PYTHON ?= python3.11
VENV ?= .venv
VPY := $(VENV)/bin/python
PYTHON_CHECK := $(shell $(PYTHON) -c 'import sys; print("ok" if sys.version_info >= (3, 11) else "is Python %d.%d" % sys.version_info[:2])' 2>/dev/null || echo "was not found")
ifneq ($(PYTHON_CHECK),ok)
ifneq ($(filter-out help,$(or $(MAKECMDGOALS),help)),)
$(error PYTHON=$(PYTHON) $(PYTHON_CHECK): the build tooling needs CPython 3.11 or newer (set PYTHON=...))
endif
endif
VENV_CHECK := import platform, sys; ok = sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64"); print("" if ok else "is Python " + platform.python_version() + " on " + sys.platform + "/" + platform.machine())
# PyTorch's CPU wheels are not on PyPI; pip finds them on this page (see requirements/).
TORCH_FIND_LINKS ?= https://download.pytorch.org/whl/cpu/torch/
PIP_INSTALL_ARGS ?= --retries 1
# Debian packages the browser tests need (installed when missing and running as root).
BROWSER_PACKAGES ?= chromium chromium-driver
PYTEST_ARGS ?=
LOCKS ?=
EXPLAIN_ARGS ?=
BENCH_SERVE_ARGS ?=
BENCH_APPS ?= $(APPS)
BENCH_VARIANTS ?= $(VARIANTS)
BENCH_SCENARIOS ?= cold warm code deps
BENCH_REPEAT ?= 3
BENCH_ARGS ?=
ARTIFACTS ?= artifacts

# ---- images ---------------------------------------------------------------------------
# ENGINE: docker (BuildKit; a running engine, DOCKER_HOST or docker context is used as it is)
# or podman. BASE_IMAGE: every variant's base, pinned by digest; when it cannot be pulled a
# Debian-built equivalent (LOCAL_BASE) is made with mmdebstrap and used instead.
ENGINE ?= docker
# The images' platform (every build, pull and run): the one the locks and the wheelhouse are
# for. Other hosts (Apple silicon) build and run it under emulation.
PLATFORM ?= linux/amd64
# APPS: every table of dockerfiles/apps.toml, the one list of apps (add yours there).
APPS ?= $(shell $(PYTHON) -c 'import tomllib; print(*tomllib.load(open("dockerfiles/apps.toml", "rb")))' 2>/dev/null)
VARIANTS ?= pip uv multistage
APP ?= backend
VARIANT ?= uv
TRAINER_VARIANT ?= uv
BASE_IMAGE ?= python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
LOCAL_BASE ?= grocery-base:bookworm-py3.11
COMPOSE_PROJECT ?= grocery
export ENGINE BASE_IMAGE LOCAL_BASE TRAINER_VARIANT TORCH_FIND_LINKS PLATFORM
# Extra arguments for the engine's build command (one per word), e.g. CI's layer cache:
# BUILD_ARGS="--load --cache-from=type=gha,scope=x --cache-to=type=gha,mode=max,scope=x"
BUILD_ARGS ?=
BUILD_PY = $(PYTHON) scripts/build.py --artifacts $(ARTIFACTS)
BUILD_EXTRA = $(foreach a,$(BUILD_ARGS),--build-arg=$(a))
# Debian package of Nix for the flake tests (tests/nix), installed when no nix is on PATH.
NIX_PACKAGES ?= nix-bin

.PHONY: help
help: ## Show this help (the default goal)
	@echo "Usage: make [target] [VAR=value ...]"
	@echo
	@grep -hE '^[a-zA-Z0-9_%-]+:.*?## ' $(MAKEFILE_LIST) \
	  | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-20s %s\n", $$1, $$2}'
	@echo
	@echo "Variables (current value):"
	@echo "  ENGINE=$(ENGINE) APPS='$(APPS)' VARIANTS='$(VARIANTS)' APP=$(APP) VARIANT=$(VARIANT)"
	@echo "  BASE_IMAGE=$(BASE_IMAGE)"
	@echo "  LOCAL_BASE=$(LOCAL_BASE) ARTIFACTS=$(ARTIFACTS) PLATFORM=$(PLATFORM)"
	@echo "  PYTHON=$(PYTHON) VENV_PYTHON=$(VENV_PYTHON)"

# ---- Python environment and locks ---------------------------------------------------------
$(VENV)/.installed: requirements/dev.txt
	@echo ">> creating $(VENV) from requirements/dev.txt"
	@problem=$$($(VENV_PYTHON) -c '$(VENV_CHECK)' 2>/dev/null || echo "was not found"); \
	  [ -z "$$problem" ] || { echo "error: VENV_PYTHON=$(VENV_PYTHON) $$problem: the test venv installs the images' locks, which need CPython 3.11 on Linux x86_64 (set VENV_PYTHON=..., or run the tests in \`nix develop\` or a python:3.11 container; \`make images\` needs no venv)" >&2; exit 1; }
	@[ -x $(VPY) ] || $(VENV_PYTHON) -m venv $(VENV)
	@$(VPY) -m pip install --quiet --require-hashes --no-deps $(PIP_INSTALL_ARGS) \
	  --find-links $(TORCH_FIND_LINKS) -r requirements/dev.txt
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create or update the project's .venv from requirements/dev.txt

.PHONY: lock
lock: $(VENV)/.installed ## Regenerate requirements/*.txt from *.in with pip-compile (LOCKS=app: only that lock)
	@echo ">> pip-compile: requirements/*.in -> requirements/*.txt"
	@$(VPY) scripts/lock.py $(if $(LOCKS),--only $(LOCKS))

.PHONY: lock-upgrade
lock-upgrade: $(VENV)/.installed ## Like lock, moving every pin to the newest allowed version
	@$(VPY) scripts/lock.py --upgrade

.PHONY: lock-check
lock-check: ## Fail when a lock is stale, unhashed, or names a local path or CUDA package
	@echo ">> checking requirements/*.txt against requirements/*.in"
	@$(PYTHON) scripts/lock.py --check

# ---- images ----------------------------------------------------------------------------------
.PHONY: engine
engine: ## Make sure the container engine answers (installs + starts docker.io on fresh Debian)
	@$(PYTHON) scripts/engine.py --engine $(ENGINE)

.PHONY: base
base: ## Resolve the base image: pull BASE_IMAGE or build LOCAL_BASE (REBUILD=1: a fresh root fs)
	@$(PYTHON) scripts/engine.py --engine $(ENGINE)
	@$(PYTHON) scripts/base.py --engine $(ENGINE) $(if $(REBUILD),--rebuild)

.PHONY: wheels
wheels: ## Fetch every locked wheel (Linux x86_64, CPython 3.11) into build/wheelhouse
	@$(PYTHON) scripts/wheels.py

.PHONY: images
images: ## Build all images: grocery-<app>:<variant> for APPS x VARIANTS (12 by default)
	@$(BUILD_PY) images --apps $(APPS) --variants $(VARIANTS) $(BUILD_EXTRA)

.PHONY: image
image: ## Build one image: make image APP=backend VARIANT=uv
	@$(BUILD_PY) images --apps $(APP) --variants $(VARIANT) $(BUILD_EXTRA)

image-%: ## Build one image by name: make image-backend-uv
	@$(BUILD_PY) images --apps $(firstword $(subst -, ,$*)) --variants $(lastword $(subst -, ,$*)) $(BUILD_EXTRA)

.PHONY: explain
explain: ## Why each step of the last build of APP:VARIANT re-ran or was reused (EXPLAIN_ARGS=--json)
	@$(PYTHON) scripts/explain.py --app $(APP) --variant $(VARIANT) --engine $(ENGINE) $(EXPLAIN_ARGS)

.PHONY: train
train: ## Run the trainer image (TRAINER_VARIANT), writing models and metrics to $(ARTIFACTS)/
	@$(BUILD_PY) train --variant $(TRAINER_VARIANT) --out $(ARTIFACTS)

.PHONY: up
up: ## The lab's flow: backend + frontend on a user-defined network (VARIANT=uv), frontend on :8050
	@$(PYTHON) scripts/stack.py up --variant $(VARIANT) --project $(COMPOSE_PROJECT)

.PHONY: down
down: ## Stop the `make up` stack and remove its containers and network
	@$(PYTHON) scripts/stack.py down --project $(COMPOSE_PROJECT)

.PHONY: sbom
sbom: ## Write a CycloneDX SBOM per image (Python distributions + Debian packages) to build/sbom/
	@$(PYTHON) scripts/sbom.py --engine $(ENGINE) --apps $(APPS) --variants $(VARIANTS)

.PHONY: verify-repro
verify-repro: ## Build every image twice from clean and compare (identical IDs with podman)
	@$(PYTHON) scripts/repro.py --engine $(ENGINE) --apps $(APPS) --variants $(VARIANTS)

# ---- checks -------------------------------------------------------------------------------
.PHONY: lint
lint: $(VENV)/.installed ## hadolint, ruff, shellcheck, actionlint (.github/workflows), lock-check
	@echo ">> hadolint dockerfiles/*.Dockerfile"
	@$(VENV)/bin/hadolint --config .hadolint.yaml dockerfiles/*.Dockerfile
	@echo ">> ruff check + format"
	@$(VENV)/bin/ruff check src tests scripts dockerfiles
	@$(VENV)/bin/ruff format --check --quiet src tests scripts dockerfiles
	@echo ">> shellcheck"
	@$(VENV)/bin/shellcheck scripts/*.sh .ci/run
	@echo ">> actionlint .github/workflows"
	@$(VENV)/bin/actionlint -shellcheck $(VENV)/bin/shellcheck -pyflakes= .github/workflows/*.yml
	@$(MAKE) lock-check

.PHONY: browser-deps
browser-deps: ## Install Debian's chromium + chromium-driver for the browser tests if missing
	@scripts/ensure-apt.sh $(BROWSER_PACKAGES)

.PHONY: nix-deps
nix-deps: ## Install Debian's nix-bin for the flake tests if no nix is on PATH
	@command -v nix >/dev/null || scripts/ensure-apt.sh $(NIX_PACKAGES)

.PHONY: test
test: $(VENV)/.installed browser-deps nix-deps images ## Run every test: unit, browser and containers (builds the images with both engines)
	@echo ">> pytest (all tests)"
	@$(VPY) -m pytest $(PYTEST_ARGS)
	@$(MAKE) test-podman

.PHONY: test-podman
test-podman: $(VENV)/.installed ## Build every image with Podman (layer cache on) and run the image and service tests on them
	@$(MAKE) images ENGINE=podman
	@echo ">> pytest (images and services built by Podman)"
	@ENGINE=podman $(VPY) -m pytest -m container tests/containers/test_container_images.py \
	  tests/containers/test_container_hostile.py \
	  tests/containers/test_container_services.py $(PYTEST_ARGS)

.PHONY: test-containers
test-containers: $(VENV)/.installed images ## Run the container tests only
	@$(VPY) -m pytest -m container $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(VENV)/.installed nix-deps ## Run the unit tests only (no browser, no engine)
	@$(VPY) -m pytest -m "not browser and not container" $(PYTEST_ARGS)

# ---- models and benchmarks ----------------------------------------------------------------
.PHONY: train-local
train-local: $(VENV)/.installed ## Train both models on the host into $(ARTIFACTS)/
	@echo ">> training into $(ARTIFACTS)/ (synthetic grocery images + $(or $(DATASET),iris))"
	@PYTHONPATH=src $(VPY) -m trainer all --out $(ARTIFACTS)

$(ARTIFACTS)/image/model.safetensors:
	@$(MAKE) train-local

.PHONY: bench-serve
bench-serve: $(VENV)/.installed $(ARTIFACTS)/image/model.safetensors ## Load-test the backend's /predict (16 clients)
	@echo ">> benchmarking POST /predict on 127.0.0.1"
	@$(VPY) scripts/bench_serve.py --model-dir $(ARTIFACTS)/image $(BENCH_SERVE_ARGS)

.PHONY: bench-builds
bench-builds: $(VENV)/.installed images ## Benchmark pip/uv/multistage builds (BENCH_APPS/VARIANTS/SCENARIOS/REPEAT)
	@echo ">> benchmarking builds: apps='$(BENCH_APPS)' variants='$(BENCH_VARIANTS)' scenarios='$(BENCH_SCENARIOS)' x$(BENCH_REPEAT)"
	@$(VPY) scripts/bench_builds.py --engine $(ENGINE) --apps $(BENCH_APPS) --variants $(BENCH_VARIANTS) \
	  --scenarios $(BENCH_SCENARIOS) --repeat $(BENCH_REPEAT) $(BENCH_ARGS)

.PHONY: bench-builds-quick
bench-builds-quick: $(VENV)/.installed ## A quick bench-builds run (one small image) to check the harness
	@$(VPY) scripts/bench_builds.py --engine $(ENGINE) --quick $(BENCH_ARGS)

.PHONY: clean
clean: ## Remove generated files and the grocery images (venv and wheelhouse kept)
	-@$(PYTHON) scripts/stack.py down --project $(COMPOSE_PROJECT) 2>/dev/null
	-@$(PYTHON) scripts/build.py clean
	rm -rf build/context build/logs build/base $(ARTIFACTS) .pytest_cache .ruff_cache
	find src tests scripts -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: distclean
distclean: clean ## Remove everything generated, .venv and wheelhouse included
	rm -rf $(VENV) build
