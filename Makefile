# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# The CPU constraints file pins torch to the local CPU build; on a GPU machine install normally
# (`pip install -e .[gpu]`) and torch brings its CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONSTRAINTS ?= constraints/cpu.txt
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_EVALUATE_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-all lint format bench clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) torch==2.13.0
	DS_BUILD_OPS=0 $(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py --output_dir outputs/demo

test: $(STAMP)
	$(PY) -m pytest -q tests

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow" tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) benchmarks/bench_steps.py --output benchmarks/results/steps_cpu.json
	$(PY) benchmarks/bench_mae_lm.py --output benchmarks/results/mae_lm_cpu.json
	$(PY) benchmarks/bench_dial_mae.py --output benchmarks/results/dial_mae_cpu.json
	$(PY) benchmarks/bench_cotmae_v2.py --output benchmarks/results/cotmae_v2_cpu.json
	$(PY) benchmarks/bench_md2pr.py --output benchmarks/results/md2pr_cpu.json
	$(PY) benchmarks/bench_retrieval.py --update --output benchmarks/results/retrieval_cpu.json

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache .import_linter_cache *.egg-info
