# stek: two commands on a fresh machine.
#   make up     virtual environment + install + the whole stack on the embedded emulator
#   make test   install what the tests need, check style and types, run every test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PyTorch is pinned to the builds the runner is tested with; pip (not uv/poetry) finds
# them in the machine's wheel cache where one exists.
TORCH := torch==2.14.1 torchvision==0.29.1
CODE := src functions gpu_runner tests bench

.PHONY: up test demo install lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[runner,dev]'
	touch $@

install: $(VENV)/.installed

up: install
	$(BIN)/stek up

demo: install
	$(BIN)/stek demo

lint: install
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy src functions gpu_runner tests bench
	$(BIN)/cfn-lint template.yaml

format: install
	$(BIN)/ruff check --fix $(CODE)
	$(BIN)/ruff format $(CODE)

test: lint
	$(BIN)/pytest -q -p no:cacheprovider --durations=15

bench: install
	for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .stek .pytest_cache .mypy_cache .ruff_cache stek-demo-output
