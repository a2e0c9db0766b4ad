# The two set-up commands of the README:
#   make serve   create .venv, install llmops with the embedded model, run `llmops serve`
#   make test    install the dev extras and run lint, types and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LLMOPS_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
LLMOPS_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
export LLMOPS_TEST_POSTGRES_URL LLMOPS_TEST_REDIS_URL

.PHONY: serve test lint install-local install-dev bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install-local: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local]'

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,data,dev]'

serve: install-local
	$(BIN)/llmops serve

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: install-dev
	bash bench/run.sh
