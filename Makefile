# Two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup clean-demo

setup: $(STAMP)

# torch==2.13.0 comes first: that exact version is the local CPU build; any other spec would pull CUDA.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/weightspace zoo build formal-languages --out zoos/demo-formal-languages \
		--models 32 --population 32 --steps 300 --checkpoints 0,100,200,300 --samples 500 --rollouts 50
	$(BIN)/weightspace zoo build digits --out zoos/demo-digits \
		--models 16 --population 16 --steps 400 --checkpoints 0,100,200,400 --samples 300 --rollouts 50

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean-demo:
	rm -rf zoos/demo-formal-languages zoos/demo-digits
