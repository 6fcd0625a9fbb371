# `make demo` and `make test` work on a fresh machine with Python 3.11 and pip.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck clean

$(STAMP): pyproject.toml setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: with a GPU, PyPI's CUDA build; without one, the CPU build 2.13.0. An
	# existing torch is left alone, and the ranges in pyproject.toml then install nothing.
	@if $(PY) -c "import torch" 2>/dev/null; then echo "torch already installed"; \
	elif nvidia-smi -L >/dev/null 2>&1; then $(PY) -m pip install -q torch; \
	else $(PY) -m pip install -q torch==2.13.0 || $(PY) -m pip install -q torch; fi
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gantool demo --out demo-output

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) tools/typecheck.py
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# mypy on the installed layout (plugins/ is translator.plugins, ...) and on tests/, benchmarks/,
# examples/; see tools/typecheck.py.
typecheck: $(STAMP)
	$(PY) tools/typecheck.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
