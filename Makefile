# Two entry points, each doing all of its own set-up on a fresh machine:
#   make demo   train mlp-smooth-mnist to its article's schedule, export it, write grid.png
#   make test   run the test suite (every skip says why; under CI=true a skipped requirement fails)
#   make test-fast   the part that needs no browser, no registry and no slow training
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARCH ?= mlp-smooth-mnist
RUN ?= runs/demo-$(ARCH)

.PHONY: demo test test-fast setup web-screenshot gallery

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,export,cpu,dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/python -m training.run --arch $(ARCH) --run-dir $(RUN) $(if $(wildcard $(RUN)/config.json),--resume)
	$(BIN)/ganexport --run $(RUN) --best
	$(BIN)/ganrun --model $(RUN)/export/generator.int8.onnx --n 25 --seed 0 --out grid.png
	@echo "wrote grid.png"

test: setup
	$(BIN)/python -m pytest -q -rs

test-fast: setup
	$(BIN)/python -m pytest -q -rs -m "not slow and not browser and not network"

# The README's screenshot of the web page: the shipped default's page, served on 127.0.0.1 and
# drawn by headless Chromium (needs npm and chromium, as the browser tests do).
web-screenshot: setup
	$(BIN)/python -m export.web --out build/site
	cd tests/browser && npm ci --silent && node screenshot.mjs ../../build/site ../../docs/web-page.png

# The README's gallery: ganrun's grid (gan-1d: its scatter) of every shipped model, seed 0.
gallery: setup
	mkdir -p docs/gallery
	for name in $$($(BIN)/python -c "from runtime.shipped import load_index; print(*load_index()['models'])"); do \
	  $(BIN)/ganrun --model $$name --n $$( [ $$name = gan-1d ] && echo 500 || echo 25) --seed 0 \
	    --quiet --out docs/gallery/$$name.png || exit 1; \
	done
