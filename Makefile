# `make demo`: venv + install + the main job on embedded data.  `make test`: venv + install + tests.
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints.txt
PIP_C = $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
BIN = $(VENV)/bin

.PHONY: setup demo test bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate pyproject.toml $(CONSTRAINTS)
	$(BIN)/pip install -q $(PIP_C) -e '.[mpi,dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/landscape demo

test: setup
	$(BIN)/ruff check .
	PATH=$(abspath $(BIN)):$$PATH MPLBACKEND=Agg $(BIN)/python -m pytest -n 2 --doctest-modules tests regularizers landscape analysis

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV)
