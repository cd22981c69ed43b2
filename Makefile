# Two commands do all set-up on a fresh machine with Python 3.11+: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# One stamp per kind of install, each redone when pyproject.toml changes:
# core = the package alone (plan, launch, journal, `toolkit`); demo = + the notebook and
# sandbox extras, what the demo runs; dev = + the test tools, JupyterLab, playwright, ruff.
STAMP_CORE := $(VENV)/.installed-core
STAMP_DEMO := $(VENV)/.installed-demo
STAMP_DEV  := $(VENV)/.installed-dev

.PHONY: demo test lint bench notebooks lab app sandbox browser-deps java-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP_CORE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(STAMP_DEMO): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[notebook,sandbox]"
	touch $@ $(STAMP_CORE)

# dev holds the extras: the lighter installs are then up to date too
$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@ $(STAMP_DEMO) $(STAMP_CORE)

## demo: the main job, end to end on the local sandbox
demo: $(STAMP_DEMO)
	$(BIN)/python -m toolkit demo

## test: every test (unit, sandbox over HTTP, doctests, browser), the sandbox's tests again with
## its second process (toolkit sandbox --two-processes), then the notebooks with nbval (another
## pytest session, so the notebooks get a fresh sandbox and journal of their own)
test: $(STAMP_DEV) browser-deps java-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check toolkit tests bench notebooks
	$(BIN)/mypy
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest --sandbox-two-processes tests/sandbox tests/test_variants_launch.py tests/test_reliability.py
	$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg notebooks

## lint: ruff (rules and format), then mypy on toolkit/ ([tool.mypy] in pyproject.toml)
lint: $(STAMP_DEV)
	$(BIN)/ruff check . && $(BIN)/ruff format --check toolkit tests bench notebooks
	$(BIN)/mypy

## java-deps: Debian's Java 17 for the Spark tests (tests/test_spark.py; installed when we are root)
java-deps:
	@if command -v java >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian openjdk-17-jre-headless for the Spark tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null) \
	    || { echo "could not install Java 17"; [ "$$CI" != "true" ] || exit 1; }; \
	else echo "java not found: Spark tests will be skipped (sudo apt-get install openjdk-17-jre-headless)"; fi

## browser-deps: Debian's chromium for the browser tests (installed when we are root)
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || { echo "could not install chromium"; [ "$$CI" != "true" ] || exit 1; }; \
	else echo "chromium not found: browser tests will be skipped (sudo apt-get install chromium)"; fi

## bench: performance figures side by side with their baselines
bench: $(STAMP_CORE)
	$(BIN)/python bench/plan_throughput.py
	$(BIN)/python bench/read_segment.py
	$(BIN)/python bench/journal_durability.py

## notebooks: re-execute the notebooks against a fresh sandbox to refresh their outputs
notebooks: $(STAMP_DEMO)
	$(BIN)/python -m toolkit notebooks --refresh

## lab: sandbox + JupyterLab on the notebooks
lab: $(STAMP_DEV)
	$(BIN)/python -m toolkit lab

## app: the launch form as a stand-alone page (Voila), on the sandbox
app: $(STAMP_DEMO)
	$(BIN)/python -m toolkit app

## sandbox: the local platform API server alone
sandbox: $(STAMP_DEMO)
	$(BIN)/toolkit sandbox

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .mypy_cache
