# The two commands a user types: `make report` (the main job) and `make test` (the test suite).
# Both create .venv, install sparsenet with every extra, and make the datasets available first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: setup data report test bench clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[train,bench,test]'
	touch $(STAMP)

data:
	@bash scripts/install-data.sh

report: setup
	$(PY) -m bench.report $(ARGS)

test: setup
	$(PY) -m pytest tests -q
	$(PY) -m pytest bench -q --benchmark-disable --grid ci

bench: setup
	$(PY) -m pytest bench --benchmark-only $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
