# Two entry points for a fresh machine (Python 3.11, pip, make):
#   make demo   set up .venv and run the built-in end-to-end demo
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# the pretrained encoder's weights; the package's own dependencies (TensorFlow 1 era) are never installed
	$(BIN)/python -m pip install --quiet --no-deps musicnn==0.1.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/soundalike demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/search_latency.py

clean:
	rm -rf $(VENV) *.egg-info
