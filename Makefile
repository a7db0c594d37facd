# The DAG of this project. `make reproduce` = setup + the six notebooks on the offline `default` profile.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := requirements/constraints.txt
PROFILE ?= default
RUN_NAME ?=
STAGES ?=
# Keep Jupyter's per-user state inside the project so a run never depends on (or writes to) $HOME.
export JUPYTER_CONFIG_DIR := $(CURDIR)/.jupyter
export IPYTHONDIR := $(CURDIR)/.ipython

.PHONY: setup setup-ray converters reproduce run smoke paper-dry test test-all lint lab bench clean-venv

setup: $(VENV)/.installed converters

# CPU torch first (pinned), then everything else under the same constraints so pip never reaches for CUDA wheels.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) requirements/no-deps.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c $(CONSTRAINTS) "torch==2.13.0"
	$(PIP) install -c $(CONSTRAINTS) -e ".[train,llm,dev]"
	$(PIP) install --no-deps -r requirements/no-deps.txt
	$(PY) -m maritime_slm doctor
	touch $@

# The optional Ray engine (`engine.kind: ray`, the `ray` extra, pinned); CI installs it so the Ray test runs.
setup-ray: $(VENV)/.installed-ray

$(VENV)/.installed-ray: $(VENV)/.installed
	$(PIP) install -c $(CONSTRAINTS) -e ".[ray]"
	touch $@

# llama.cpp's GGUF converters, from the sdist of the installed llama-cpp-python: fetched once into .cache/, then kept.
converters: $(VENV)/.installed
	$(PY) -m maritime_slm.finetune.gguf

reproduce: setup
	$(PY) -m maritime_slm run --profile $(PROFILE) $(if $(RUN_NAME),--run-name $(RUN_NAME)) $(if $(STAGES),--stages $(STAGES))

run: reproduce

smoke: setup
	$(PY) -m maritime_slm run --profile smoke

# The paper profile's LLM settings against the strict OpenAI emulator on a loopback port (nothing is sent to the API):
# the key is a dummy, set here for this command only, so a real key in the environment is never used.
paper-dry: setup
	OPENAI_API_KEY=dry-run-not-a-key $(PY) -m maritime_slm run --profile paper-dry $(if $(RUN_NAME),--run-name $(RUN_NAME))

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

# The fast lane while working (no model, llama.cpp server, training or notebook run: under 2 min); CI runs test-all.
test: setup lint
	$(VENV)/bin/pytest -m "not slow"

test-all: setup lint
	$(VENV)/bin/pytest

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

bench: setup
	$(PY) benchmarks/ingest.py

clean-venv:
	rm -rf $(VENV)
