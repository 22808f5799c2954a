# Two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
TORCH := $(VENV)/.installed-torch

.PHONY: demo test setup clean-demo

setup: $(STAMP)

# torch==2.13.0 comes first: that exact version is the local CPU build; any other spec would pull CUDA.
$(TORCH):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	touch $(TORCH)

$(STAMP): pyproject.toml | $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/weightspace run experiments/demo.toml
	$(BIN)/weightspace zoo info zoos/demo-formal-languages
	@echo "report: results/demo/report.md"

# the tests also install the optional extras (dsa-metric, an oracle; Ray, the --executor ray tests):
# one install of everything, which also serves make demo
$(TEST_STAMP): pyproject.toml | $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test,dsa,ray]"
	touch $(TEST_STAMP) $(STAMP)

test: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks experiments
	$(BIN)/ruff format --check src tests benchmarks experiments
	$(BIN)/python -m pytest -q

clean-demo:
	rm -rf zoos/demo-formal-languages zoos/demo-digits results/demo
