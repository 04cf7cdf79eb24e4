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
PIP_INSTALL_ARGS ?= --retries 1
# Debian packages the browser tests need (installed when missing and running as root).
BROWSER_PACKAGES ?= chromium chromium-driver
PYTEST_ARGS ?=
LOCKS ?=
EXPLAIN_ARGS ?=
BENCH_SERVE_ARGS ?=
BENCH_APPS ?= $(APPS)
BENCH_VARIANTS ?= $(VARIANTS)
BENCH_SCENARIOS ?= cold warm code deps lab cache
BENCH_REPEAT ?= 3
BENCH_ARGS ?=
ARTIFACTS ?= artifacts
BUILD_DIR ?= build

# ---- images ---------------------------------------------------------------------------
# ENGINE: docker (BuildKit; a running engine, DOCKER_HOST or docker context is used as it is)
# or podman. BASE_IMAGE: every variant's base, pinned by digest; when it cannot be pulled a
# Debian-built equivalent (LOCAL_BASE) is made with mmdebstrap and used instead. PLATFORM:
# the images' platform, the one the locks and the wheelhouse are for (other hosts, such as
# Apple silicon, build and run it under emulation). The defaults of BASE_IMAGE, LOCAL_BASE,
# PLATFORM, IMAGE_PREFIX, TRAINER_VARIANT and TORCH_FIND_LINKS live in
# scripts/imagetools/config.py and reach Make through $(BUILD_DIR)/apps.mk (below).
ENGINE ?= docker
APP ?= backend
VARIANT ?= uv
COMPOSE_PROJECT ?= grocery
# Extra flags for the engine's build command (one per word), e.g. CI's layer cache:
# BUILD_FLAGS="--cache-from=type=gha,scope=x --cache-to=type=gha,mode=max,scope=x"
BUILD_FLAGS ?=
REGISTRY ?=
REGISTRY_ADDR ?= 127.0.0.1:5000
# A registry repository the layer cache is shared through (e.g. 127.0.0.1:5000/grocery/cache):
# Docker pushes each image there with its inline cache and builds --cache-from it.
CACHE_REPO ?=
# make sign: a GPG fingerprint in GNUPGHOME (none: a test key under build/signing), and where
# signatures are kept (a folder, or the URL consumers read; none: build/registry/signatures).
SIGN_KEY ?=
SIGNATURES ?=
# Debian package of Nix for the flake tests (tests/nix), installed when no nix is on PATH.
NIX_PACKAGES ?= nix-bin
# The build tooling: one package, scripts/imagetools (`python -m imagetools` lists commands).
TOOL = PYTHONPATH=scripts $(PYTHON) -m imagetools
VTOOL = PYTHONPATH=scripts $(VPY) -m imagetools

# apps.toml's apps, the per-app inputs and the tooling's defaults, as Make variables.
$(BUILD_DIR)/apps.mk: dockerfiles/apps.toml scripts/imagetools/config.py scripts/imagetools/makefile.py
	@mkdir -p $(@D)
	@$(TOOL) makefile > $@.tmp && mv $@.tmp $@
include $(BUILD_DIR)/apps.mk
# APPS: every table of dockerfiles/apps.toml, the one list of apps (add yours there).
APPS ?= $(ALL_APPS)
VARIANTS ?= $(ALL_VARIANTS)
# An unknown app or variant is one clear line, before anything runs (once apps.mk is made).
ifneq ($(ALL_VARIANTS),)
ifneq ($(filter-out $(ALL_APPS),$(APPS) $(APP)),)
$(error unknown app '$(firstword $(filter-out $(ALL_APPS),$(APPS) $(APP)))': the apps are $(ALL_APPS) (dockerfiles/apps.toml))
endif
ifneq ($(filter-out $(ALL_VARIANTS),$(VARIANTS) $(VARIANT) $(TRAINER_VARIANT)),)
$(error unknown variant '$(firstword $(filter-out $(ALL_VARIANTS),$(VARIANTS) $(VARIANT) $(TRAINER_VARIANT)))': the variants are $(ALL_VARIANTS))
endif
endif
export ENGINE BASE_IMAGE LOCAL_BASE OFFICIAL_BASE TRAINER_VARIANT TORCH_FIND_LINKS PLATFORM IMAGE_PREFIX \
  BUILD_DIR ARTIFACTS REGISTRY REGISTRY_ADDR SIGN_KEY SIGNATURES CACHE_REPO
# pytest keeps the container tests whose images are all in APPS x VARIANTS (tests/conftest.py);
# not APPS itself: the tests run make in copies of the repository with apps of their own.
PYTEST = TEST_APPS='$(APPS)' TEST_VARIANTS='$(VARIANTS)' $(VPY) -m pytest

.PHONY: help
help: ## Show this help (the default goal)
	@echo "Usage: make [target] [VAR=value ...]"
	@echo
	@grep -hE '^[a-zA-Z0-9_%-]+:.*?## ' $(MAKEFILE_LIST) \
	  | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-20s %s\n", $$1, $$2}'
	@echo
	@echo "Variables (current value):"
	@$(foreach v,$(HELP_VARIABLES),printf '  %-18s %s\n' '$(v)' '$(subst ','\'',$($(v)))';)
# Every `NAME ?= default` of the makefiles read (this one, then $(BUILD_DIR)/apps.mk), in order.
HELP_VARIABLES = $(shell sed -nE 's/^([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*[?]=.*/\1/p' \
  $(MAKEFILE_LIST) | awk '!seen[$$0]++')

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
	@$(VTOOL) lock $(if $(LOCKS),--only $(LOCKS))

.PHONY: lock-upgrade
lock-upgrade: $(VENV)/.installed ## Like lock, moving every pin to the newest allowed version
	@$(VTOOL) lock --upgrade

.PHONY: lock-check
lock-check: ## Fail when a lock is stale, unhashed, or names a local path or CUDA package
	@echo ">> checking requirements/*.txt against requirements/*.in"
	@$(TOOL) lock --check

# ---- images ----------------------------------------------------------------------------------
# The pipeline, as files Make can date: engine -> base (build/stamps/<engine>/<prefix>base) and the
# wheelhouse (build/wheelhouse/SHA256SUMS) -> the trainer image -> the models
# ($(ARTIFACTS)/.trained) -> one stamp per image (build/stamps/<engine>/<prefix><app>-<variant>,
# holding its ID). base and wheels are checked on every run and rewrite their file only when
# it changes, so `make images` with nothing changed builds nothing; `make -n images` shows the
# plan and `make -j2 images` builds independent images side by side.
STAMPS = $(BUILD_DIR)/stamps/$(ENGINE)
BASE_STAMP = $(STAMPS)/$(IMAGE_PREFIX)base
WHEELS_STAMP = $(BUILD_DIR)/wheelhouse/SHA256SUMS
MODELS_STAMP = $(ARTIFACTS)/.trained
IMAGE_COMMON = dockerfiles/apps.toml dockerfiles/context.dockerignore requirements/tools.txt \
  $(wildcard dockerfiles/runtime/*.py dockerfiles/buildtime/*.py) $(BASE_STAMP) $(WHEELS_STAMP)
image_stamp = $(STAMPS)/$(IMAGE_PREFIX)$(1)-$(2)
app_files = $(filter-out src/%,$(INPUTS_$(1))) \
  $(shell find $(filter src/%,$(INPUTS_$(1))) -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path '*/tests/*' 2>/dev/null)
define image_rule
$(call image_stamp,$(1),$(2)): $(call app_files,$(1)) dockerfiles/$(2).Dockerfile $(IMAGE_COMMON) $(if $(MODEL_$(1)),$(MODELS_STAMP) $(shell find $(ARTIFACTS)/$(MODEL_$(1)) -type f 2>/dev/null))
	@$$(TOOL) image $(1) $(2)$$(if $$(BUILD_FLAGS), --flags="$$(BUILD_FLAGS)")
endef
$(foreach app,$(ALL_APPS),$(foreach variant,$(VARIANTS),$(eval $(call image_rule,$(app),$(variant)))))
IMAGE_STAMPS = $(foreach app,$(APPS),$(foreach variant,$(VARIANTS),$(call image_stamp,$(app),$(variant))))

# A stamp whose image was removed or re-tagged by hand is dropped (one engine call), so that
# Make builds that image again. (Make 4.3 does not export variables to $(shell): name them.)
ifneq ($(filter images image image-% test test-containers test-podman test-official bench-builds train push,$(or $(MAKECMDGOALS),help)),)
$(foreach line,$(shell ENGINE='$(ENGINE)' IMAGE_PREFIX='$(IMAGE_PREFIX)' BUILD_DIR='$(BUILD_DIR)' \
  $(TOOL) forget-missing 2>/dev/null | tr ' ' '~'),$(info $(subst ~, ,$(line))))
endif

.PHONY: FORCE
FORCE:

.PHONY: engine
engine: ## Make sure the container engine answers (installs + starts docker.io on fresh Debian)
	@$(TOOL) engine

$(BASE_STAMP): FORCE | engine
	@$(TOOL) base

.PHONY: base
base: ## Resolve the base image: pull BASE_IMAGE or build LOCAL_BASE (REBUILD=1: a fresh root fs)
	@$(TOOL) engine
	@$(TOOL) base $(if $(REBUILD),--rebuild)

.PHONY: base-official
base-official: ## Build OFFICIAL_BASE offline: python:3.11-slim's layout (Debian 13, CPython in /usr/local; REBUILD=1: fresh inputs)
	@$(TOOL) engine
	@$(TOOL) base-official $(if $(REBUILD),--rebuild)

.PHONY: base-digest
base-digest: ## Pin the default BASE_IMAGE's tag at the digest its registry has now (skopeo; config.py + Dockerfiles)
	@$(TOOL) base-digest

$(WHEELS_STAMP): FORCE
	@$(TOOL) wheels

.PHONY: wheels
wheels: $(WHEELS_STAMP) ## Fetch every locked wheel (Linux x86_64, CPython 3.11) into build/wheelhouse

# The trainer image only when the models are still to be made (ARTIFACTS given: not built).
$(MODELS_STAMP): | $(if $(wildcard $(MODELS_STAMP)),,$(call image_stamp,trainer,$(TRAINER_VARIANT)))
	@$(TOOL) train --if-missing

.PHONY: models
models: $(MODELS_STAMP) ## Train the models with the trainer image unless $(ARTIFACTS)/ has them

.PHONY: images
images: $(IMAGE_STAMPS) ## Build all images: grocery-<app>:<variant> for APPS x VARIANTS (12 by default)

.PHONY: image
image: $(call image_stamp,$(APP),$(VARIANT)) ## Build one image: make image APP=backend VARIANT=uv

image-%: ## Build one image by name: make image-backend-uv
	@$(MAKE) image APP=$(patsubst %-$(lastword $(subst -, ,$*)),%,$*) VARIANT=$(lastword $(subst -, ,$*))

.PHONY: explain
explain: ## Why each step of the last build of APP:VARIANT re-ran or was reused (EXPLAIN_ARGS=--json)
	@$(TOOL) explain $(APP) $(VARIANT) $(EXPLAIN_ARGS)

.PHONY: train
train: $(call image_stamp,trainer,$(TRAINER_VARIANT)) ## Run the trainer image (TRAINER_VARIANT), writing models and metrics to $(ARTIFACTS)/
	@$(TOOL) train

.PHONY: up
up: ## The lab's flow: backend + frontend on a user-defined network (VARIANT=uv), frontend on :8050
	@$(TOOL) up --variant $(VARIANT) --project $(COMPOSE_PROJECT)

.PHONY: down
down: ## Stop the `make up` stack and remove its containers and network
	@$(TOOL) down --project $(COMPOSE_PROJECT)

.PHONY: sbom
sbom: $(VENV)/.installed ## Write a CycloneDX SBOM per image (Python distributions + Debian packages) to build/sbom/
	@$(VTOOL) sbom --apps $(APPS) --variants $(VARIANTS)

.PHONY: registry
registry: ## Start a local registry (Debian's docker-registry) on REGISTRY_ADDR, data in build/registry/
	@$(TOOL) registry

.PHONY: registry-down
registry-down: ## Stop the local registry (its data stays)
	@$(TOOL) registry-down

.PHONY: push
push: $(IMAGE_STAMPS) ## Push APPS x VARIANTS to REGISTRY=host[:port]/prefix; record them in build/published.json
	@$(TOOL) push --apps $(APPS) --variants $(VARIANTS)

.PHONY: sign
sign: ## Sign the pushed APPS x VARIANTS (GPG, SIGN_KEY); write build/signing/policy.json for consumers
	@$(TOOL) sign --apps $(APPS) --variants $(VARIANTS)

.PHONY: pull
pull: ## Pull the published APPS x VARIANTS by digest into ENGINE, refusing any not signed by SIGN_KEY
	@$(TOOL) pull --apps $(APPS) --variants $(VARIANTS)

.PHONY: verify-published
verify-published: ## Rebuild what REGISTRY holds (published.json) in a fresh clone, varied env, and compare
	@$(TOOL) verify-published --apps $(APPS) --variants $(VARIANTS)

.PHONY: verify-repro
verify-repro: ## Build every image twice from clean and compare (identical IDs with podman)
	@$(TOOL) verify-repro --apps $(APPS) --variants $(VARIANTS)

# ---- checks -------------------------------------------------------------------------------
.PHONY: lint
lint: $(VENV)/.installed ## hadolint, ruff, shellcheck, actionlint (.github/workflows), lock-check
	@echo ">> hadolint dockerfiles/*.Dockerfile dockerfiles/bench/*.Dockerfile"
	@$(VENV)/bin/hadolint --config .hadolint.yaml dockerfiles/*.Dockerfile dockerfiles/bench/*.Dockerfile
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
test: $(VENV)/.installed browser-deps nix-deps images ## Run every test: unit, browser, containers (both engines) and test-official (both engines)
	@echo ">> pytest (all tests)"
	@$(PYTEST) $(PYTEST_ARGS)
	@$(MAKE) test-podman
	@$(MAKE) test-official
	@$(MAKE) test-official ENGINE=podman

.PHONY: test-podman
test-podman: $(VENV)/.installed ## Build every image with Podman (layer cache on) and run the image, structure, scan, service, stack and registry tests on them
	@$(MAKE) images ENGINE=podman
	@echo ">> pytest (images and services built by Podman)"
	@ENGINE=podman $(PYTEST) -m container tests/containers/test_container_images.py \
	  tests/containers/test_container_hostile.py tests/containers/test_container_services.py \
	  tests/containers/test_container_stack.py tests/containers/test_container_registry.py \
	  tests/containers/test_container_labels.py tests/containers/test_container_structure.py \
	  $(PYTEST_ARGS)

# The official base's path, here where python:3.11-slim cannot be pulled: OFFICIAL_APPS x every
# variant built on OFFICIAL_BASE as $(OFFICIAL_PREFIX)<app>:<variant>, and their tests.
OFFICIAL_APPS ?= flask
OFFICIAL_PREFIX ?= official-
.PHONY: test-official
test-official: $(VENV)/.installed $(MODELS_STAMP) ## Build OFFICIAL_APPS x VARIANTS on OFFICIAL_BASE (make base-official); run their image, hostile, service, structure, syft and SBOM tests
	@$(MAKE) base-official
	@$(MAKE) images BASE_IMAGE=$(OFFICIAL_BASE) IMAGE_PREFIX=$(OFFICIAL_PREFIX) APPS='$(OFFICIAL_APPS)'
	@echo ">> pytest (OFFICIAL_APPS='$(OFFICIAL_APPS)' on $(OFFICIAL_BASE))"
	@BASE_IMAGE=$(OFFICIAL_BASE) IMAGE_PREFIX=$(OFFICIAL_PREFIX) TEST_APPS='$(OFFICIAL_APPS)' \
	  TEST_VARIANTS='$(VARIANTS)' $(VPY) -m pytest -m container \
	  tests/containers/test_container_images.py tests/containers/test_container_hostile.py \
	  tests/containers/test_container_services.py tests/containers/test_container_labels.py \
	  tests/containers/test_container_structure.py tests/containers/test_container_sbom.py \
	  $(PYTEST_ARGS)

.PHONY: test-incremental
test-incremental: $(VENV)/.installed images ## The incremental-build mutation test for every engine x variant (make test runs two of them)
	@INCREMENTAL_MATRIX=all $(VPY) -m pytest -m container tests/containers/test_container_incremental.py $(PYTEST_ARGS)

.PHONY: test-containers
test-containers: $(VENV)/.installed images ## Run the container tests only
	@$(PYTEST) -m container $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(VENV)/.installed nix-deps ## Run the unit tests only: not the browser, container (engine) or slow tests
	@$(VPY) -m pytest -m "not browser and not container and not slow" $(PYTEST_ARGS)

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
	@$(VTOOL) bench-serve --model-dir $(ARTIFACTS)/image $(BENCH_SERVE_ARGS)

.PHONY: bench-builds
bench-builds: $(VENV)/.installed images ## Benchmark pip/uv/multistage builds (BENCH_APPS/VARIANTS/SCENARIOS/REPEAT)
	@echo ">> benchmarking builds: apps='$(BENCH_APPS)' variants='$(BENCH_VARIANTS)' scenarios='$(BENCH_SCENARIOS)' x$(BENCH_REPEAT)"
	@$(VTOOL) bench-builds --apps $(BENCH_APPS) --variants $(BENCH_VARIANTS) \
	  --scenarios $(BENCH_SCENARIOS) --repeat $(BENCH_REPEAT) $(BENCH_ARGS)

.PHONY: bench-builds-quick
bench-builds-quick: $(VENV)/.installed ## A quick bench-builds run (one small image) to check the harness
	@$(VTOOL) bench-builds --quick $(BENCH_ARGS)

.PHONY: clean
clean: ## Remove generated files and the images of apps.toml (venv, wheelhouse and build/base-official kept)
	-@$(TOOL) down --project $(COMPOSE_PROJECT) 2>/dev/null
	-@$(TOOL) clean
	-@IMAGE_PREFIX='$(OFFICIAL_PREFIX)' $(TOOL) clean
	rm -rf $(BUILD_DIR)/context $(BUILD_DIR)/logs $(BUILD_DIR)/stamps $(BUILD_DIR)/base $(ARTIFACTS) .pytest_cache .ruff_cache
	find src tests scripts -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: distclean
distclean: clean ## Remove everything generated, .venv and wheelhouse included
	rm -rf $(VENV) $(BUILD_DIR)
