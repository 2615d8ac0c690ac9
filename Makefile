# Two commands do all the set-up (see README): `make demo` and `make test`.
# Each creates or reuses the local virtual environment .venv first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint install clean browser

$(STAMP): pyproject.toml Makefile
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	# The face generator's package declares dependencies its generator does not use (wandb, ...).
	$(VENV)/bin/pip install --quiet --no-deps gan-face-generate==1.1.1
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/python -m pipelines.demo

# Headless Chromium for the browser-page test (Debian's package; CI runs as root).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest

test-slow: $(STAMP) browser
	$(VENV)/bin/python -m pytest -m slow

clean:
	rm -rf $(VENV) outputs
