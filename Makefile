# Two commands for a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs; what pip cannot install,
# tools/system-packages installs (as root) or names the command for.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test unit lint docs venv kafka-up kafka-down clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres]'
	touch $(STAMP)

venv: $(STAMP)

# What pip cannot install: apt as root, else the command to run (tools/system-packages).
demo: $(STAMP)
	tools/system-packages demo
	$(BIN)/gridlink demo

test: $(STAMP)
	tools/system-packages test
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

# ruff's rule set is in pyproject.toml; mypy is strict on the pure core, streams/, and
# checks the other packages with its default settings.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict streams/
	$(BIN)/mypy agents topics store observability api simulation benchmarks cli settings.py clock.py

# docs/configuration.md is written from the settings object; a unit test fails until it is.
docs: $(STAMP)
	$(BIN)/python -m cli.settings_doc > docs/configuration.md

kafka-up: $(STAMP)
	$(BIN)/gridlink kafka up

kafka-down: $(STAMP)
	$(BIN)/gridlink kafka down

clean:
	rm -rf $(VENV) data build *.egg-info
