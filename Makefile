# One place for the project's commands. Each target builds its own virtual environment.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Test processes (pytest-xdist): auto = one per core. Each test has a 300 s timeout
# (pyproject), so a hung test fails with its stack instead of stalling the run.
JOBS ?= auto
XDIST := -n $(JOBS) --dist loadgroup

.PHONY: demo test check lint bench bench-quick screenshots venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/evstore demo

test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
	  echo "note: chromium or chromedriver is not installed: the browser tests will be SKIPPED (apt-get install chromium chromium-driver; .ci/run installs them)"
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST) $(PYTEST_ARGS)

# The inner loop (under a minute on two quiet cores): lint, types, and every test not marked
# slow or browser (tests/conftest.py lists the slow ones: simulations, multi-process
# clusters, long property tests), with fewer hypothesis examples.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	EVSTORE_HYPOTHESIS_PROFILE=check $(BIN)/python -m pytest -q -p no:cacheprovider $(XDIST) \
	  -m "not slow and not browser" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench --write $(EVSTORE_BENCH_ARGS)

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick $(EVSTORE_BENCH_ARGS)

screenshots: $(STAMP)
	EVSTORE_SCREENSHOTS=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/web/test_browser.py

clean:
	rm -rf $(VENV) build dist *.egg-info
