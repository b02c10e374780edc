# Two entry points for a fresh machine (Python 3.11, pip, make):
#   make demo   set up .venv and run the built-in end-to-end demo
#   make test   set up .venv and run the test suite
# The package is installed (not linked) into .venv, and reinstalled whenever a source file changed, so the
# tests and the demo run what a user's `pip install` gets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEPS := $(VENV)/.deps
STAMP := $(VENV)/.installed
SOURCES := __init__.py cli.py errors.py $(wildcard model/*.py catalog/*.py indexer/*.py search/*.py search/web/* demo/*.py) $(wildcard model/weights/*)

.PHONY: demo test test-fast setup bench clean

setup: $(STAMP)

$(DEPS): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet '.[test]'
	# the pretrained encoder's weights; the package's own dependencies (TensorFlow 1 era) are never installed
	$(BIN)/python -m pip install --quiet --no-deps musicnn==0.1.0
	touch $(DEPS)

$(STAMP): $(DEPS) $(SOURCES)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --force-reinstall .
	rm -rf build
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/soundalike demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# everything but the slow system tests (install, soak, browser, Ray, training): for the edit-test loop
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not slow'

bench: $(STAMP)
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) build *.egg-info
