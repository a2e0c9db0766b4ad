# The two set-up commands of the README:
#   make serve   create .venv, install llmops with the embedded model, run `llmops serve`
#   make test    install the dev extras and run lint, types and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LLMOPS_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
LLMOPS_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
export LLMOPS_TEST_POSTGRES_URL LLMOPS_TEST_REDIS_URL

# llama.cpp (llama-cpp-python) compiles on install. Not with -march=native: on a CPU that advertises AMX
# that build uses AMX tiles, and a virtual machine that does not grant them crashes on the first
# multi-token batch. AVX2/FMA/F16C run on every x86-64 machine of the last decade.
CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
export CMAKE_ARGS
# A wheel built earlier (pip caches it) may still be a native one: if the check crashes, rebuild.
define check_llama
	@$(BIN)/python -m llmops.providers.llama_check || { \
	  echo "llama.cpp cannot run here as built; rebuilding it with CMAKE_ARGS=$(CMAKE_ARGS)" >&2; \
	  $(BIN)/pip cache remove llama_cpp_python >/dev/null 2>&1; \
	  $(BIN)/pip install --quiet --force-reinstall --no-deps --no-binary llama-cpp-python \
	    "llama-cpp-python==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')" \
	  && $(BIN)/python -m llmops.providers.llama_check; }
endef

.PHONY: serve test lint install-local install-dev bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install-local: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local]'
	$(check_llama)

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,data,eval,train,guard,dev]'
	$(check_llama)

serve: install-local
	$(BIN)/llmops serve

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# two workers; a module's tests stay on one worker (its module fixtures are built once)
test: lint
	$(BIN)/pytest -q -n 2 --dist loadscope

bench: install-dev
	bash bench/run.sh
