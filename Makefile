# The two commands of the README: `make run` and `make test`. Both create .venv with pip if needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXPERIMENT ?= all

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned, so pip takes the local CPU wheel instead of a CUDA build.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev,distributed]"
	touch $(STAMP)

## Run the default experiment suite on its small default, then build the HTML report.
run: $(STAMP)
	$(BIN)/adaptlearn run $(EXPERIMENT) --quick
	$(BIN)/adaptlearn report runs

## Run the fast test suite (slow reproduction tests are excluded: `-m slow` runs them).
test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs report.html report.md
