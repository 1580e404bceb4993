# Two commands for a fresh machine: `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-all clean

install: $(STAMP)

# torch first and pinned: it is the CPU wheel; a looser torch pulls several GB of CUDA packages.
$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

demo: install
	$(BIN)/graphimpute run --input src/graphimpute/data/pbmc3k_small.h5ad --outdir demo_results \
		--methods all --label-key cell_type
	@echo "Results in demo_results/ (one folder per step)"

test: install
	$(BIN)/python -m pytest -q

test-all: install
	$(BIN)/python -m pytest -q --runslow

clean:
	rm -rf demo_results .pytest_cache
