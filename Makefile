# The two commands of the README (both set up .venv first, idempotently; see .ci/setup.sh):
#   make demo   reenact the shipped examples with tiny random networks (no weights needed), into $(OUT)
#   make test   the whole test suite (CPU torch, test extras, Chromium where apt-get can install it)
# Overrides: PYTHON=python3.12, VENV=.venv, OUT=runs/demo, DEMO_ARGS="--max-frames 8" (more reenact flags),
# PYTEST_ARGS="tests/test_readme.py -q".
PYTHON ?= python3
VENV ?= .venv
OUT ?= runs/demo
PYTEST_ARGS ?= -q -n 2 --dist loadfile
DEMO_ARGS ?=

.PHONY: demo test setup setup-test

demo: setup
	$(VENV)/bin/python -m jaxreenact.reenact --source example --driving example --out $(OUT) --tiny $(DEMO_ARGS)
	@echo "next: open $(OUT)/grid.mp4 (source | driving | reenacted; --tiny networks draw noise);"
	@echo "      the other programs without weights: README.md, Quickstart (. $(VENV)/bin/activate first);"
	@echo "      real weights: docs/weights.md; reenact, edit, the web demo: docs/inference.md, docs/webdemo.md"

test: setup-test
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/python -m pytest $(PYTEST_ARGS)  # as if activated: ruff, python

setup:
	@PYTHON="$(PYTHON)" VENV="$(VENV)" bash .ci/setup.sh demo

setup-test:
	@PYTHON="$(PYTHON)" VENV="$(VENV)" bash .ci/setup.sh test
