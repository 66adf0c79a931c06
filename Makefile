# lightyard: `make train` and `make test` set everything up on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned to a build that matches torchvision; GPU users may pick their CUDA build:
#   make install TORCH="torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cu128"
TORCH ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
# pytest workers; the launch tests start extra processes of their own
JOBS ?= 2
ARGS ?=
BENCH_BACKBONES ?= cnn,resnet,lstm,transformer

.PHONY: install train eval test test-quick lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## make the virtual environment and install lightyard with its dev tools

train: install ## run the default job (CNN on digits); extra overrides: make train ARGS="model=resnet"
	$(BIN)/python train.py $(ARGS)

test: install ## the whole suite, launch paths included (what CI runs)
	$(BIN)/python -m pytest -n $(JOBS) $(ARGS)

test-quick: install ## the fast subset for iterating (no real runs, no subprocess launches)
	$(BIN)/python -m pytest -n $(JOBS) -m "not slow" $(ARGS)

lint: install ## ruff lint and format check
	$(BIN)/ruff check src tests benchmarks train.py eval.py
	$(BIN)/ruff format --check src tests benchmarks train.py eval.py

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks train.py eval.py
	$(BIN)/ruff format src tests benchmarks train.py eval.py

bench: install ## the CPU benchmarks (about 10 minutes on 2 cores); rewrites the README's results
	$(BIN)/python -m benchmarks.cli_latency
	$(BIN)/python -m benchmarks.overhead --backbones $(BENCH_BACKBONES)
	$(BIN)/python -m benchmarks.data_pipeline
	$(BIN)/python -m benchmarks.time_to_accuracy
	$(BIN)/python -m benchmarks.text_cache
	$(BIN)/python -m benchmarks.validation_speed
	$(BIN)/python -m benchmarks.report

clean: ## remove run outputs and caches (not the virtual environment)
	rm -rf outputs/* .pytest_cache .ruff_cache build dist
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
	touch outputs/.gitkeep
