# Two commands do all the set-up (see README): `make demo` and `make test`.
# Each creates or reuses the local virtual environment .venv first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow install clean browser

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/python -m pipelines.demo

# Headless Chromium for the browser-page test (Debian's package; CI runs as root).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

test: $(STAMP) browser
	$(VENV)/bin/python -m pytest

test-slow: $(STAMP) browser
	$(VENV)/bin/python -m pytest -m slow

clean:
	rm -rf $(VENV) outputs
