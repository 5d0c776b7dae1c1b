# Two entry points for a fresh machine: `make serve` and `make test` (see README); `make test-fast` while working.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve serve-lora ask test test-fast chaos bench bench-burst bench-arrivals bench-lora bench-device venv

# Without --model both use the trained demo model that ships in services/demo/glm4v-demo/.
serve: $(BIN)/flashvqa
	$(BIN)/flashvqa serve --port 8000

# The same, with the demo LoRA adapter (services/demo/sentences-adapter/) beside the base as model "sentences".
serve-lora: $(BIN)/flashvqa
	$(BIN)/flashvqa serve --port 8000 --lora-adapter sentences=services/demo/sentences-adapter

ask: $(BIN)/flashvqa
	$(BIN)/flashvqa ask --image examples/images/receipt.png "Is this a travel expense?"

bench: $(BIN)/flashvqa
	$(BIN)/python -m bench.serving_benchmark

# 300 requests at once on the local stack: answered, refused, and how fast (docs/performance.md, Overload).
bench-burst: $(BIN)/flashvqa
	$(BIN)/python -m bench.burst_benchmark

# A running stream while 8 prompts arrive at once, at several step budgets (docs/performance.md, Arrivals).
bench-arrivals: $(BIN)/flashvqa
	$(BIN)/python -m bench.arrival_benchmark

# 16 requests on the base model against 16 over 4 LoRA adapters, in one engine (docs/performance.md, LoRA).
bench-lora: $(BIN)/flashvqa
	$(BIN)/python -m bench.lora_benchmark

# The one-shot GPU benchmark at GLM-4.6V-Flash's dimensions, random weights (docs/performance.md).
bench-device: $(BIN)/flashvqa
	$(BIN)/python -m bench.device_benchmark --out bench-results/device.json

# Only the chaos tests (also part of `make test`): a burst, dropped streams, Redis and a decoder killed.
chaos: $(BIN)/flashvqa
	$(BIN)/pytest -m chaos

# What CI runs: the format check, lint, types, then every test with a coverage report of services/.
test: $(BIN)/flashvqa
	$(BIN)/ruff format --check . && $(BIN)/ruff check . && $(BIN)/mypy && $(BIN)/pytest --cov --cov-report=term:skip-covered

# The unit tests, while working: no Ray, no browser, nothing slow (CONTRIBUTING.md).
test-fast: $(BIN)/flashvqa
	$(BIN)/pytest -m "not ray and not browser and not slow"

venv: $(BIN)/flashvqa

$(BIN)/flashvqa: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@
