# Two commands for a fresh machine: `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install nextflow demo test test-all clean

install: $(STAMP)

# torch first and pinned. PyPI serves Linux x86_64 only its CUDA build (~2.7 GB of nvidia-* wheels; it runs
# on CPU too): measured size and time in bench/results/install_cost.md. A CPU-only build comes from PyTorch's
# own CPU index (README: "Set up and try it").
$(STAMP): pyproject.toml requirements.txt requirements-baselines.txt scripts/install_groovy_parser.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -r requirements-baselines.txt
	$(BIN)/pip install -q scvi-tools==1.4.2
	$(BIN)/pip install -q --no-deps -e .
	bash scripts/install_groovy_parser.sh || echo "warning: no Groovy parser (needs npm + Java 17): its static test will be skipped"
	touch $(STAMP)

# The Nextflow engine (pinned in scripts/nextflow/pom.xml), resolved through Maven into .nextflow-dist/
# (~70 MB with both versions, git-ignored; bench/results/install_cost.md), started by .venv/bin/nextflow; needs Java 17 and mvn. The oldest version the
# manifest admits is installed beside it (its launcher in .nextflow-dist/<version>/) for the engine tests.
OLDEST_NEXTFLOW := $(shell sed -n "s/.*nextflowVersion *= *'!>=\([0-9.]*\)'.*/\1/p" nextflow.config)

nextflow: $(BIN)/nextflow .nextflow-dist/$(OLDEST_NEXTFLOW)/nextflow

$(BIN)/nextflow: scripts/nextflow/pom.xml scripts/install_nextflow.sh | $(STAMP)
	bash scripts/install_nextflow.sh

.nextflow-dist/$(OLDEST_NEXTFLOW)/nextflow: scripts/nextflow/pom.xml scripts/install_nextflow.sh nextflow.config
	bash scripts/install_nextflow.sh $(OLDEST_NEXTFLOW) $@

demo: install
	$(BIN)/graphimpute run --input src/graphimpute/data/pbmc3k_small.h5ad --outdir demo_results \
		--methods all --benchmark --mask-seeds 2 --label-key cell_type --params-file assets/test_method_params.json
	@echo "Results in demo_results/ (one folder per step); report: demo_results/multiqc/multiqc_report.html"

test: install nextflow
	$(BIN)/python -m pytest -q

test-all: install nextflow
	$(BIN)/python -m pytest -q --runslow

clean:
	rm -rf demo_results .pytest_cache .nextflow-dist
