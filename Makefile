# Two commands for a fresh machine (Python >= 3.10 with pip and venv):
#   make train   set up .venv and run the main job
#   make test    set up .venv (with PyTorch CPU for the parity tests) and run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: train test setup setup-test lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/pip install -q -e '.[train]'

setup-test: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,test,tasks]'

train: setup
	$(BIN)/bptt gradcheck

test: setup-test
	$(BIN)/ruff check src tests
	$(BIN)/python -m pytest -q

lint: setup-test
	$(BIN)/ruff check src tests
