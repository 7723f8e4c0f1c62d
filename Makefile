# The two commands of the README. Both work from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## make run: install, migrate, seed a demo clinic if empty, run web + worker + beat (+ mail sink)
run: $(STAMP)
	mkdir -p instance
	$(BIN)/flask --app clinic db upgrade
	$(BIN)/flask --app clinic seed-demo --if-empty
	$(BIN)/python scripts/run_dev.py

## make test: install, make sure PostgreSQL and Redis answer, run the whole suite
test: $(STAMP)
	scripts/ensure_services.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	scripts/ensure_services.sh
	$(BIN)/python bench/intake.py

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
