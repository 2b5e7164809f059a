# The two commands a user types: `make report` (the main job) and `make test` (the test suite).
# Both create .venv, install sparsenet with every extra, and make the datasets available first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: setup data report test lint bench clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# up to three tries: a download cut short or corrupted on the way fails pip's hash check
	@# (seen once in CI, on onnxruntime's wheel); a second try downloads it again
	@for try in 1 2 3; do \
	  $(PY) -m pip install --quiet --disable-pip-version-check --no-compile -e '.[train,bench,test,onnx,engines]' \
	    && break; \
	  [ $$try = 3 ] && exit 1; echo "pip install failed (try $$try of 3); trying again" >&2; sleep 5; \
	done
	touch $(STAMP)

data:
	@bash scripts/install-data.sh

report: setup
	$(PY) -m bench.report $(ARGS)

# The tests use a throw-away cache (SPARSENET_TEST_CACHE, see tests/conftest.py): nothing lands in
# the user's ~/.cache/sparsenet. They run in two workers, a test file to each (much of the suite
# waits on report subprocesses, TensorFlow start-up and numba compiles). The benchmark suite runs
# inside them: tests/test_report.py's report runs bench/test_forward.py over the CI grid, timed,
# every case checked against dense first (a separate untimed pass over the same grid repeated it).
test: setup lint
	@cache=$$(mktemp -d) && trap 'rm -rf "$$cache"' EXIT && \
	  SPARSENET_TEST_CACHE=$$cache $(PY) -m pytest tests -q -n 2 --dist loadfile --no-loadscope-reorder

lint: setup
	$(PY) -m ruff check sparsenet bench tests

bench: setup
	$(PY) -m pytest bench --benchmark-only $(ARGS)

# numba's on-disk kernel cache (__pycache__/*.nbi, *.nbc) goes too: it does not notice edits to
# sparsenet/kernels/simd.py, which the cached kernels inline
clean:
	rm -rf $(VENV) .pytest_cache .benchmarks .ruff_cache
	find sparsenet bench tests -name '*.nbi' -delete -o -name '*.nbc' -delete
