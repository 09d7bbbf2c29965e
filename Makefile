# Three entry points, each doing all of its own set-up on a fresh machine:
#   make demo   train gan-edge's conditional MNIST generator (the first DEMO_EPOCHS epochs of
#               its schedule), export it, write grid.png with one row per digit
#   make test   run the test suite (every skip says why; under CI=true a skipped requirement fails)
#   make wheel  build the device wheel (runtime only) into dist/
#   make test-fast   the part that needs no browser, no registry and no slow training
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARCH ?= cgan-mnist
# The shipped cgan-mnist trained 30 epochs; the demo trains the first 2 of them (the same steps,
# so the same scores at each epoch on a CPU of the same kind) to stay near 10 minutes on 2 cores.
DEMO_EPOCHS ?= 2
RUN ?= runs/demo-$(ARCH)

.PHONY: demo test test-fast setup test-tools wheel web-screenshot gallery

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,export,cpu,dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/python -m training.run --arch $(ARCH) --run-dir $(RUN) --epochs $(DEMO_EPOCHS) $(if $(wildcard $(RUN)/config.json),--resume)
	$(BIN)/ganexport --run $(RUN) --best
	$(BIN)/ganrun --model $(RUN)/export/generator.int8.onnx --n 100 --cols 10 --class all --seed 0 --out grid.png
	@echo "wrote grid.png"

# Test files run in parallel, one worker per core (at most 4: each holds its own TensorFlow), a
# file's tests on one worker so they share its module fixtures, the longest files first
# (tests/conftest.py's LONGEST_FIRST, kept in that order).
PARALLEL := -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder

# The browser tests drive Debian's Chromium through node; npm also fetches onnxruntime-web and,
# on a fresh machine, the real MNIST. Installed where missing and the machine allows it (root,
# apt-get); elsewhere the browser tests skip with a line naming this target.
TEST_TOOLS := chromium npm

test-tools:
	@for tool in $(TEST_TOOLS); do \
	  command -v $$tool >/dev/null && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $$tool with apt-get (the browser tests need it)"; \
	    apt-get install -y -q $$tool >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$tool >/dev/null 2>&1; } || \
	      echo "note: apt-get could not install $$tool; the tests that need it will say so"; \
	  else \
	    echo "note: $$tool is missing and only root can install it: sudo make test-tools"; \
	  fi; \
	done

test: setup test-tools
	$(BIN)/python -m pytest -q -rs $(PARALLEL)

test-fast: setup
	$(BIN)/python -m pytest -q -rs $(PARALLEL) -m "not slow and not browser and not network"

# The device wheel, gan-edge-runtime: runtime/ and its shipped models alone (docs/device.md).
wheel: setup
	$(BIN)/python device-wheel/build.py --out dist

# The README's screenshot of the web page: the shipped default's page, served on 127.0.0.1 and
# drawn by headless Chromium (needs npm and chromium, as the browser tests do).
web-screenshot: setup
	$(BIN)/python -m export.web --out build/site
	cd tests/browser && npm ci --silent && node screenshot.mjs ../../build/site ../../docs/web-page.png

# The README's gallery: ganrun's grid (gan-1d: its scatter; a conditional model: a row per
# class) of every shipped model, seed 0 (docs/generate.py's gallery_arguments).
gallery: setup
	$(BIN)/python docs/generate.py --gallery

# The generated parts of README.md and docs/*.md (tables, listings, --help) from committed files;
# tests/test_docs.py fails while they are out of date.
.PHONY: docs
docs: setup
	$(BIN)/python docs/generate.py
