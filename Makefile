# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# One stamp per install: `make run` needs the service alone, `make test` adds the dev extras
# (pytest, mypy, playwright, schemathesis, hadolint...). Neither redoes the other's work.
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: run test openapi bench

$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV): $(RUNTIME) pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## Start the service on the embedded default: SQLite file, sandbox on, console provider.
run: $(RUNTIME)
	$(BIN)/verifyd serve

## Lint, type-check and run the whole test suite (SQLite and PostgreSQL).
## First what the suite needs from the system (PostgreSQL, Chromium, curl, jq): installed
## with apt-get when this user can, else make stops here and prints the command to run.
test:
	bash scripts/test-prerequisites
	@$(MAKE) --no-print-directory $(DEV)
	$(BIN)/ruff check src tests migrations bench loadtest
	$(BIN)/ruff format --check src tests migrations bench loadtest
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	$(BIN)/pytest

## Measure verifyd against the floor (reference app) in one run: bench/run.py, whose
## docstring says what it measures. Options as ARGS, e.g. make bench ARGS="--duration 5".
bench: $(DEV)
	$(BIN)/python bench/run.py $(ARGS)

## Regenerate the committed openapi.yaml from the app.
openapi: $(RUNTIME)
	$(BIN)/python -m verifyd.openapi > openapi.yaml.tmp && mv openapi.yaml.tmp openapi.yaml \
		|| { rm -f openapi.yaml.tmp; exit 1; }
