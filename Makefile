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
BENCH_WORKLOADS ?= tiny_cnn,small_cnn,cnn,resnet,lstm,transformer
# the oldest Lightning pyproject.toml accepts (its `lightning>=X` floor), tested beside the newest
OLDEST_LIGHTNING ?= $(shell sed -n 's/^ *"lightning>=\([0-9.]*\).*/\1/p' pyproject.toml)
VENV_OLDEST ?= .venv-oldest
STAMP_OLDEST := $(VENV_OLDEST)/.installed-$(OLDEST_LIGHTNING)

.PHONY: install train eval test test-quick test-oldest lint format bench clean

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
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup $(ARGS)

test-quick: install ## the fast subset for iterating (no real runs, no subprocess launches)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup -m "not slow" $(ARGS)

# A second environment that sees everything of the first (torch included: no second multi-GB
# install) except Lightning, which is the oldest release pyproject.toml accepts.
$(STAMP_OLDEST): $(STAMP)
	rm -rf $(VENV_OLDEST)
	$(PYTHON) -m venv $(VENV_OLDEST)
	main=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	own=$$($(VENV_OLDEST)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	echo "import site; site.addsitedir('$$main')" > "$$own/zz_lightyard_main_venv.pth"
	$(VENV_OLDEST)/bin/python -m pip install --quiet "lightning==$(OLDEST_LIGHTNING)"
	$(VENV_OLDEST)/bin/python -c "import lightning as L; from packaging.version import Version as V; assert V(L.__version__) == V('$(OLDEST_LIGHTNING)'), L.__version__"
	touch $(STAMP_OLDEST)

test-oldest: $(STAMP_OLDEST) ## the fast subset on the oldest Lightning pyproject.toml accepts
	$(VENV_OLDEST)/bin/python -m pytest -n $(JOBS) --dist loadgroup -m "not slow" $(ARGS)

lint: install ## ruff lint and format check
	$(BIN)/ruff check src tests benchmarks train.py eval.py predict.py export.py prepare.py
	$(BIN)/ruff format --check src tests benchmarks train.py eval.py predict.py export.py prepare.py

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks train.py eval.py predict.py export.py prepare.py
	$(BIN)/ruff format src tests benchmarks train.py eval.py predict.py export.py prepare.py

bench: install ## the CPU benchmarks (about 15 minutes on 2 cores; MNIST only with LIGHTYARD_MNIST=<idx files>); rewrites the README's results
	$(BIN)/python -m benchmarks.cli_latency
	$(BIN)/python -m benchmarks.overhead --workloads $(BENCH_WORKLOADS)
	$(BIN)/python -m benchmarks.overhead --workloads tiny_cnn,small_cnn --breakdown
	$(BIN)/python -m benchmarks.data_pipeline
	$(BIN)/python -m benchmarks.time_to_accuracy
	$(BIN)/python -m benchmarks.mnist_cnn
	$(BIN)/python -m benchmarks.text_cache
	$(BIN)/python -m benchmarks.validation_speed
	$(BIN)/python -m benchmarks.report

clean: ## remove run outputs and caches (not the virtual environment)
	rm -rf outputs/* .pytest_cache .ruff_cache .import_linter_cache build dist
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
	touch outputs/.gitkeep
