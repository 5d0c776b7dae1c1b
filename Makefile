# Two entry points for a fresh machine: `make serve` and `make test` (see README).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_MODEL := models/tiny-glm4v

.PHONY: serve ask test bench venv

serve: $(BIN)/flashvqa $(DEMO_MODEL)/config.json
	$(BIN)/flashvqa serve --model $(DEMO_MODEL) --port 8000

ask: $(BIN)/flashvqa $(DEMO_MODEL)/config.json
	$(BIN)/flashvqa ask --model $(DEMO_MODEL) --image examples/images/receipt.png "Is this a travel expense?"

bench: $(BIN)/flashvqa
	$(BIN)/python -m bench.serving_benchmark

test: $(BIN)/flashvqa
	$(BIN)/ruff check . && $(BIN)/mypy && $(BIN)/pytest

venv: $(BIN)/flashvqa

$(BIN)/flashvqa: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

$(DEMO_MODEL)/config.json: | $(BIN)/flashvqa
	$(BIN)/flashvqa build-tiny-model --family glm4v --out $(DEMO_MODEL)
