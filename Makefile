# Two commands on a fresh machine: `make demo` and `make test`. Each creates the project's
# virtualenv (.venv) on first use from the pinned requirements.

PYTHON ?= $(shell for p in python3.12 python3; do $$p -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
export PYTHONPATH := $(CURDIR)
export PYTHONDONTWRITEBYTECODE := 1
PROFILE ?= quick
FIGURES := build/reliability

.PHONY: demo test lint pytest venv bundle package deploy remove costs clean browser replay invoke reliability mutation bench

# The Lambda artifact (serverless.yml's package.artifact) and what it is built from.
BUNDLE_ZIP := build/drs-wave-reconciler.zip
BUNDLE_SOURCES := requirements.txt $(shell find handlers reconciler schemas -type f ! -path '*/__pycache__/*' ! -name '*.pyc')
# Node tools (package-lock.json): `npm ci` runs again only when the lock file is newer than this.
NODE_STAMP := node_modules/.ci-stamp
# Packaged templates: the default stage (dev) in .serverless/, one more stage with its own options.
PROD_PACKAGE := .serverless-prod
PROD_OPTIONS := --stage prod --region eu-west-1
# osls packages offline: no credentials, no AWS profile or config read, no network.
OSLS := env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY \
	-u AWS_SESSION_TOKEN AWS_SDK_LOAD_CONFIG=0 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
	node_modules/.bin/osls

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required (python3.12 or python3)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

## The whole system on this machine: local stack, a live 3-wave drill, the status page; Ctrl-C stops.
## ARGS=--exit-when-done exits 0 once the drill is over; ARGS='--exit-when-done --faults' adds faults.
demo: $(STAMP)
	$(BIN)/python -m local.cli.demo $(ARGS)

## Replay a file from events/ (DRS events onto the local bus, or a scenario): FILE=events/... ARGS=--drill
replay: $(STAMP)
	@test -n "$(FILE)" || { echo "usage: make replay FILE=events/drs-launch-result/succeeded.json [ARGS=--drill]"; exit 2; }
	$(BIN)/python -m local.cli.replay $(FILE) $(ARGS)

## Invoke one handler with one event file on the local stack: FUNCTION=reconcile EVENT=events/... ARGS=--drill
invoke: $(STAMP)
	@test -n "$(FUNCTION)" -a -n "$(EVENT)" || { echo "usage: make invoke FUNCTION=read EVENT=events/api/get-execution.json [ARGS=--drill]"; exit 2; }
	$(BIN)/python -m local.cli.invoke $(FUNCTION) --path $(EVENT) $(ARGS)

## Debian's Chromium and ChromeDriver for the browser test, installed when missing (needs root or sudo).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

## AWS requests of one reconcile of a 100-server wave and of one GET (ARGS=--servers N).
costs: $(STAMP)
	$(BIN)/python -m local.cli.costs $(ARGS)

## Benchmarks on the local stack with AWS-like latencies: one table, figures in bench/results/latest.json.
## SCALE=full runs the scale simulation over twenty spoke accounts under one hub (one 100-server wave each); ARGS='--only read sweep' etc.
SCALE ?= default
bench: $(STAMP)
	$(BIN)/python -m bench --scale $(SCALE) $(ARGS)

## Lint, type-check, check the layers, package and lint the CloudFormation templates (the
## tests/deploy tests read them), run every test (the browser test needs `browser`; the reliability
## battery runs its quick profile), then mutation testing and the reliability figures.
test: browser lint package pytest
	$(BIN)/python -m tests.reliability.report --no-run --figures $(FIGURES)

## The reliability battery alone, with its figures (table, then one JSON line): PROFILE=quick|long.
reliability: $(STAMP)
	$(BIN)/python -m tests.reliability.report --profile $(PROFILE) --figures $(FIGURES)

## Mutation testing alone: PROFILE=quick (as in `make test`) mutates core.py, lifecycle.py,
## errors.py, retry.py and starts.py against the unit tests; PROFILE=long adds store.py, also
## killed by its tests against moto's DynamoDB (several minutes more).
mutation: $(STAMP)
	$(BIN)/python -m tests.reliability.mutation --profile $(PROFILE)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## Every test, in PYTEST_WORKERS processes (pytest-xdist; each test starts the services it needs
## on its own loopback ports, and the figures are one file per test, so processes share nothing).
PYTEST_WORKERS ?= 2
pytest: $(STAMP)
	rm -rf $(FIGURES)
	RELIABILITY_FIGURES=$(FIGURES) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal \
		--junitxml=$(FIGURES)/junit.xml $(PYTEST_ARGS)

## The deployment artifact serverless.yml points at: our code plus requirements.txt built for
## python3.12 on arm64 (the functions' runtime and architecture). Always rebuilds; `package`
## rebuilds it only when the code or requirements.txt changed.
bundle: $(STAMP)
	rm -f $(BUNDLE_ZIP)
	@$(MAKE) --no-print-directory $(BUNDLE_ZIP)

$(BUNDLE_ZIP): $(BUNDLE_SOURCES) | $(STAMP)
	rm -rf build/bundle $(BUNDLE_ZIP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --platform manylinux2014_aarch64 \
		--implementation cp --python-version 3.12 --only-binary=:all: --target build/bundle -r requirements.txt
	cp -r handlers reconciler schemas build/bundle/
	find build/bundle -name __pycache__ -prune -exec rm -rf {} +
	@# Bytecode for the runtime's Python (3.12): /var/task is read-only, so without it every cold
	@# start compiles everything (about +450 ms per function, `make bench` cold_start section).
	@if python3.12 -c "" 2>/dev/null; then python3.12 -m compileall -q -j 0 --invalidation-mode unchecked-hash build/bundle; \
	else echo "python3.12 not found: the bundle ships without bytecode (slower cold starts)"; fi
	$(BIN)/python -c "import shutil; shutil.make_archive('build/drs-wave-reconciler', 'zip', 'build/bundle')"

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## The CloudFormation templates osls builds from serverless.yml, offline, then cfn-lint on both:
## dev (default stage) in .serverless/, prod (PROD_OPTIONS, params.prod) in .serverless-prod/.
## W3005 is osls's own redundant DependsOn. Prod first: packaging elsewhere deletes .serverless/.
## Then cfn-lint on the spoke templates (SPOKE_TEMPLATES, deployed as they are), with every check.
SPOKE_TEMPLATES := deploy/spoke-roles.yml deploy/spoke-events.yml
package: $(NODE_STAMP) $(BUNDLE_ZIP) | $(STAMP)
	rm -rf .serverless $(PROD_PACKAGE)
	$(OSLS) package $(PROD_OPTIONS) --package $(PROD_PACKAGE)
	$(OSLS) package
	$(BIN)/cfn-lint --ignore-checks W3005 -- .serverless/cloudformation-template-update-stack.json \
		$(PROD_PACKAGE)/cloudformation-template-update-stack.json
	$(BIN)/cfn-lint -- $(SPOKE_TEMPLATES)

## Deploy to the AWS account of your credentials (never run by the tests): the pinned osls, the
## zip the tests ran, the stage's params. STAGE=prod REGION=eu-west-1; `remove` tears down (the
## table is retained).
STAGE ?= dev
REGION ?= us-east-1
deploy: $(NODE_STAMP) $(BUNDLE_ZIP)
	node_modules/.bin/osls deploy --stage $(STAGE) --region $(REGION)

remove: $(NODE_STAMP)
	node_modules/.bin/osls remove --stage $(STAGE) --region $(REGION)

clean:
	rm -rf $(VENV) build mutants node_modules .serverless $(PROD_PACKAGE) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
