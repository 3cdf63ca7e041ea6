# The project's own commands. Each target creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint fmt clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python examples/run_demo.py

test: $(STAMP)
	$(BIN)/pytest -q

# Every suite in --quick mode (each under a minute idle; about 3 minutes in all on an idle 2-core
# machine). Full runs: `processor bench <suite>`; see bench/README.md.
bench: $(STAMP)
	$(BIN)/processor bench all --quick

lint: $(STAMP)
	$(BIN)/ruff check log processor tests bench examples
	$(BIN)/ruff format --check log processor tests bench examples
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format log processor tests bench examples
	$(BIN)/ruff check --fix log processor tests bench examples

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
