# grocery-ml-containers: four Python ML images from three Dockerfile variants, hash-locked,
# hermetic and measured. `make` (or `make help`) lists the targets; every variable below can
# be overridden: `make images ENGINE=podman VARIANTS=uv`.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules --no-print-directory

# ---- host tools -----------------------------------------------------------------------
PYTHON ?= python3.11
VENV ?= .venv
VPY := $(VENV)/bin/python
# PyTorch's CPU wheels are not on PyPI; pip finds them on this page (see requirements/).
TORCH_FIND_LINKS ?= https://download.pytorch.org/whl/cpu/torch/
PIP_INSTALL_ARGS ?= --retries 1
# Debian packages the browser tests need (installed when missing and running as root).
BROWSER_PACKAGES ?= chromium chromium-driver
PYTEST_ARGS ?=
BENCH_SERVE_ARGS ?=
ARTIFACTS ?= artifacts

.PHONY: help
help: ## Show this help (the default goal)
	@echo "Usage: make [target] [VAR=value ...]"
	@echo
	@grep -hE '^[a-zA-Z0-9_%-]+:.*?## ' $(MAKEFILE_LIST) \
	  | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'
	@echo
	@echo "Variables (current value):"
	@echo "  ENGINE=$(ENGINE) APPS='$(APPS)' VARIANTS='$(VARIANTS)' PYTHON=$(PYTHON)"

# ---- Python environment and locks ---------------------------------------------------------
$(VENV)/.installed: requirements/dev.txt
	@echo ">> creating $(VENV) from requirements/dev.txt"
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)" >&2; exit 1; }
	@[ -x $(VPY) ] || $(PYTHON) -m venv $(VENV)
	@$(VPY) -m pip install --quiet --require-hashes --no-deps $(PIP_INSTALL_ARGS) \
	  --find-links $(TORCH_FIND_LINKS) -r requirements/dev.txt
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create or update the project's .venv from requirements/dev.txt

.PHONY: lock
lock: $(VENV)/.installed ## Regenerate requirements/*.txt from *.in with pip-compile (hashes)
	@echo ">> pip-compile: requirements/*.in -> requirements/*.txt"
	@$(VPY) scripts/lock.py

.PHONY: lock-upgrade
lock-upgrade: $(VENV)/.installed ## Like lock, moving every pin to the newest allowed version
	@$(VPY) scripts/lock.py --upgrade

.PHONY: lock-check
lock-check: ## Fail when a lock is stale, unhashed, or names a local path or CUDA package
	@echo ">> checking requirements/*.txt against requirements/*.in"
	@$(PYTHON) scripts/lock.py --check

# ---- checks -------------------------------------------------------------------------------
.PHONY: lint
lint: $(VENV)/.installed ## ruff (Python), shellcheck (scripts), lock-check
	@echo ">> ruff check + format"
	@$(VENV)/bin/ruff check src tests scripts
	@$(VENV)/bin/ruff format --check --quiet src tests scripts
	@echo ">> shellcheck"
	@$(VENV)/bin/shellcheck scripts/*.sh .ci/run
	@$(MAKE) lock-check

.PHONY: browser-deps
browser-deps: ## Install Debian's chromium + chromium-driver for the browser tests if missing
	@scripts/ensure-apt.sh $(BROWSER_PACKAGES)

.PHONY: test
test: $(VENV)/.installed browser-deps ## Run every test (unit, browser, containers)
	@echo ">> pytest (all tests)"
	@$(VPY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(VENV)/.installed ## Run the unit tests only (no browser, no engine)
	@$(VPY) -m pytest -m "not browser and not container" $(PYTEST_ARGS)

# ---- models and benchmarks ----------------------------------------------------------------
.PHONY: train-local
train-local: $(VENV)/.installed ## Train both models on the host into $(ARTIFACTS)/
	@echo ">> training into $(ARTIFACTS)/ (synthetic grocery images + $(or $(DATASET),iris))"
	@$(VPY) -m trainer all --out $(ARTIFACTS)

$(ARTIFACTS)/image/model.safetensors:
	@$(MAKE) train-local

.PHONY: bench-serve
bench-serve: $(VENV)/.installed $(ARTIFACTS)/image/model.safetensors ## Load-test the backend's /predict (16 clients)
	@echo ">> benchmarking POST /predict on 127.0.0.1"
	@$(VPY) scripts/bench_serve.py --model-dir $(ARTIFACTS)/image $(BENCH_SERVE_ARGS)

.PHONY: clean
clean: ## Remove generated files (venv kept; `make distclean` removes it too)
	rm -rf build $(ARTIFACTS) .pytest_cache .ruff_cache
	find src tests scripts -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: distclean
distclean: clean ## Remove everything generated, .venv included
	rm -rf $(VENV)
