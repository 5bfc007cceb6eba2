# bayesover: `make demo` runs the main job, `make test` the tests. Both create .venv if missing.
PYTHON ?= $(shell sh .ci/find-python)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint docs clean

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.12 found; run e.g. 'make PYTHON=/path/to/python3.12'" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bayesover demo --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q -n 2 --dist loadfile

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check bayesover tests models examples benchmarks
	$(BIN)/ruff format --check bayesover tests models examples benchmarks
	$(BIN)/mypy bayesover

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) site runs
