# Two commands from a fresh clone: `make quickstart` (creates .venv on first use, then runs the quickstart recipe) and
# `make test`. torch is pinned through the constraints file: without the pin, pip resolves the newest CUDA build.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: quickstart test setup

quickstart: $(BIN)/w2s-align
	$(BIN)/w2s-align run recipes/quickstart.yaml --jobs 2

# A worker per core (pytest-xdist; the launches of several processes share one), and the 20 slowest tests listed.
test: $(BIN)/w2s-align
	$(BIN)/python -m pytest -q -n auto --dist loadgroup --durations=20

setup: $(BIN)/w2s-align

# DeepSpeed compiles its ops on first use on a GPU machine; the install itself needs none of them.
$(BIN)/w2s-align: pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c .ci/constraints.txt torch==2.13.0
	DS_BUILD_OPS=0 $(BIN)/python -m pip install --quiet -c .ci/constraints.txt -e ".[dev]"
	touch $@
