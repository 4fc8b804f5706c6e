# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test openapi

$(BIN)/verifyd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## Start the service on the embedded default: SQLite file, sandbox on, console provider.
run: $(BIN)/verifyd
	$(BIN)/verifyd serve

## Lint, type-check and run the whole test suite (SQLite and PostgreSQL).
test: $(BIN)/verifyd
	$(BIN)/ruff check src tests migrations bench
	$(BIN)/ruff format --check src tests migrations bench
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	$(BIN)/pytest

## Regenerate the committed openapi.yaml from the app.
openapi: $(BIN)/verifyd
	$(BIN)/python -m verifyd.openapi > openapi.yaml.tmp && mv openapi.yaml.tmp openapi.yaml \
		|| { rm -f openapi.yaml.tmp; exit 1; }
