# Two commands on a fresh machine: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-arm lint bench model venv-edge venv-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Stamps make re-runs fast; they are redone when pyproject.toml changes.
$(VENV)/.edge-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[edge]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[convert,dev]'
	touch $@ $(VENV)/.edge-installed

venv-edge: $(VENV)/.edge-installed
venv-dev: $(VENV)/.dev-installed

## demo: the shipped int8 model classifying a virtual front end, live (box extra only)
demo: venv-edge
	$(BIN)/nemg demo

## test: ruff + the whole pytest suite
test: venv-dev lint
	$(BIN)/python -m pytest -q

## test-arm: the box on an emulated Raspberry Pi 4 (qemu-user, Debian's aarch64 Python and the
## edge extra's aarch64 wheels, cached in build/arm64) against this machine, bit for bit; and
## on x86 under each TFLite runtime README lists (docs/boards.md)
test-arm: venv-dev
	tools/arm/runtimes.sh
	tools/arm/test.sh

lint: venv-dev
	$(BIN)/ruff check .

## bench: every benchmark, one JSON object per line
bench: venv-dev
	$(BIN)/nemg bench all --json

## model: a candidate default bundle from scratch (both simulators → train → int8 → calibration →
## bundle + model card in build/model/); promote it to models/ only when nemg bench real and
## crosssim say it is better (docs/generalisation.md)
model: venv-dev
	$(BIN)/python -m convert.make_model --out build/model

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
