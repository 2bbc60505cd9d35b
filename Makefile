# Two commands on a fresh machine: `make demo` and `make test`. Each creates the project's
# virtualenv (.venv) on first use from the pinned requirements.

PYTHON ?= $(shell for p in python3.12 python3; do $$p -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
export PYTHONPATH := $(CURDIR)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: demo test lint pytest venv bundle costs clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required (python3.12 or python3)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

## Replay the sample 3-wave scenario through the handlers on embedded local AWS and print the table.
demo: $(STAMP)
	$(BIN)/python -m local.cli.demo $(ARGS)

## AWS requests of one reconcile of a 100-server wave and of one GET (ARGS=--servers N).
costs: $(STAMP)
	$(BIN)/python -m local.cli.costs $(ARGS)

## Lint, type-check, check the layers, then run every test.
test: lint pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The deployment artifact serverless.yml points at: our code plus requirements.txt built for
## python3.12 on arm64 (the functions' runtime and architecture).
bundle: $(STAMP)
	rm -rf build/bundle build/drs-wave-reconciler.zip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --platform manylinux2014_aarch64 \
		--implementation cp --python-version 3.12 --only-binary=:all: --target build/bundle -r requirements.txt
	cp -r handlers reconciler schemas build/bundle/
	find build/bundle -name __pycache__ -prune -exec rm -rf {} +
	$(BIN)/python -c "import shutil; shutil.make_archive('build/drs-wave-reconciler', 'zip', 'build/bundle')"

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
