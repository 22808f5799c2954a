# Two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMPILED := $(VENV)/.compiled
TEST_STAMP := $(VENV)/.installed-test
TORCH := $(VENV)/.installed-torch

.PHONY: demo test setup clean-demo

setup: $(COMPILED)

# torch==2.13.0 comes first: that exact version is the local CPU build; any other spec would pull CUDA.
# pip installs without byte-compiling, one file after another (39 s of set-up for torch, Ray and the
# rest, measured). For the demo, compileall then compiles the environment on every core (23 s on 2
# cores), so that its runs start in 3 s, not 9 s, where PYTHONDONTWRITEBYTECODE is set. Like pip's own
# step it passes over a file that this Python cannot compile (torch ships one for 3.12). The tests
# compile only what they import, on first import (tests/conftest.py).
INSTALL := $(BIN)/python -m pip install --quiet --no-compile
COMPILE := $(BIN)/python -c "import compileall, sys; compileall.compile_dir(sys.prefix + '/lib', quiet=2, workers=0)"

$(TORCH):
	$(PYTHON) -m venv $(VENV)
	$(INSTALL) torch==2.13.0
	touch $(TORCH)

$(STAMP): pyproject.toml | $(TORCH)
	$(INSTALL) -e ".[test]"
	touch $(STAMP)

$(COMPILED): $(STAMP)
	$(COMPILE)
	touch $(COMPILED)

demo: $(COMPILED)
	$(BIN)/weightspace run experiments/demo.toml
	$(BIN)/weightspace zoo info zoos/demo-formal-languages
	@echo "report: results/demo/report.md"

# the tests also install the optional extras (dsa-metric, an oracle; Ray, the --executor ray tests):
# one install of everything, which also serves make demo
$(TEST_STAMP): pyproject.toml | $(TORCH)
	$(INSTALL) -e ".[test,dsa,ray]"
	touch $(TEST_STAMP) $(STAMP)

test: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks experiments
	$(BIN)/ruff format --check src tests benchmarks experiments
	$(BIN)/python -m pytest -q --durations=25

clean-demo:
	rm -rf zoos/demo-formal-languages zoos/demo-digits results/demo
