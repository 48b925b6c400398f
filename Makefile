# The entry points people type. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
export KAFKA_PORT ?= 9092
export PGPORT ?= 5433

PEER_VENV ?= .venv-peer

.PHONY: help install run test test-unit lint format schema bench bench-ingest bench-scoring bench-alerts bench-console backtest demo screenshots console-assets clean deploy-tools check-deploy check-image dashboards image wheel

help: ## Show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {name[++n] = $$1; text[n] = $$2; if (length($$1) > width) width = length($$1)} \
		END {for (i = 1; i <= n; i++) printf "  \033[36m%-*s\033[0m  %s\n", width, name[i], text[i]}' $(MAKEFILE_LIST)

install: $(VENV)/.installed ## Create the virtualenv and install Vitals with pinned dependencies

$(VENV)/.installed: pyproject.toml setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt setuptools
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[dev,bench,backtest]'
	@touch $@

# The benchmark's peer (Quix Streams) gets a virtualenv of its own: its pins differ.
$(PEER_VENV)/.installed: bench/peer/requirements.txt
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet --upgrade pip
	$(PEER_VENV)/bin/pip install --quiet --requirement bench/peer/requirements.txt
	@touch $@

# In a terminal, run.sh gets a process group of its own (set -m) and with it Ctrl-C,
# alone: it stops everything in order and exits 0, and make, not interrupted, says so.
run: install ## Start local Kafka, the three services on SQLite and the console (Ctrl-C stops them)
	if [ -t 0 ]; then set -m; fi; deploy/local/run.sh; exit $$?

TEST_WORKERS ?= 2

test: install deploy-tools ## Run unit, integration, e2e and deployment tests, starting PostgreSQL and Kafka if needed
	deploy/local/with-infra.sh $(BIN)/pytest --numprocesses $(TEST_WORKERS) tests

test-unit: install ## Run the unit tests only (no servers needed)
	$(BIN)/pytest tests/unit

wheel: install ## Build dist/vitals-*.whl with the hot path compiled by mypyc, as the image has it (needs gcc)
	rm -f dist/vitals-*.whl
	VITALS_COMPILE=1 $(BIN)/pip wheel --quiet --no-build-isolation --no-deps --wheel-dir dist .
	@ls dist/vitals-*.whl

lint: install ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy deploy/grafana/dashboards.py deploy/check/kubernetes_schemas.py

format: install ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install $(PEER_VENV)/.installed ## Ingest, scoring (vs a Quix Streams peer and the ceiling) and alerts (BENCH_SCALE=small: short run)
	deploy/local/with-infra.sh $(BIN)/python -m bench.run

bench-console: install ## The console's pages and their API calls with 1,000,000 accounts in PostgreSQL (BENCH_SCALE=small: 20,000)
	deploy/local/with-infra.sh $(BIN)/python -m bench.console

bench-ingest: install ## Ingest over HTTP only: events/s and request latency
	BENCH_ONLY=ingest deploy/local/with-infra.sh $(BIN)/python -m bench.run

bench-scoring: install $(PEER_VENV)/.installed ## Scoring only: catch-up, open loop, recovery, peer, ceiling
	BENCH_ONLY=scoring deploy/local/with-infra.sh $(BIN)/python -m bench.run

bench-alerts: install ## Alerts only: evaluated and queued per second, score to webhook latency
	BENCH_ONLY=alerts deploy/local/with-infra.sh $(BIN)/python -m bench.run

BACKTEST_ACCOUNTS ?= 1000
BACKTEST_DAYS ?= 180
BACKTEST_SEED ?= 1
BACKTEST_DIR ?= var/backtest

backtest: install ## Generate the labelled portfolio and backtest default@1 beside default@2 (report, chart)
	$(BIN)/python -m bench.portfolio --out $(BACKTEST_DIR) --accounts $(BACKTEST_ACCOUNTS) --days $(BACKTEST_DAYS) --seed $(BACKTEST_SEED)
	$(BIN)/vitals backtest --segment $(BACKTEST_DIR)/segment.jsonl --stripe $(BACKTEST_DIR)/stripe.jsonl \
		--outcomes $(BACKTEST_DIR)/outcomes.csv \
		--scorecard services/scoring/scorecards/previous/default-v1.yaml --scorecard services/scoring/scorecards \
		--daily $(BACKTEST_DIR)/daily.jsonl --report $(BACKTEST_DIR)/report.json --chart $(BACKTEST_DIR)/report.png
	@echo "report: $(BACKTEST_DIR)/report.json, chart: $(BACKTEST_DIR)/report.png"

demo: install ## On a running `make run`: a portfolio with history from the generator's first day to yesterday, for the console
	$(BIN)/python -m bench.demo

screenshots: install ## On a running `make run` after `make demo`: the console's pages into var/screenshots (UPDATE_DOCS=1: docs/images), and the year chart's timing
	$(BIN)/python -m bench.screenshots $(if $(UPDATE_DOCS),--update-docs)

console-assets: ## Refresh the console's vendored browser assets from npm (services/console/package.json)
	cd services/console && npm install --no-save --no-package-lock --silent
	cp services/console/node_modules/htmx.org/dist/htmx.min.js services/console/static/vendor/
	cp services/console/node_modules/htmx.org/LICENSE services/console/static/vendor/htmx.LICENSE.txt
	cp services/console/node_modules/uplot/dist/uPlot.iife.min.js services/console/node_modules/uplot/dist/uPlot.min.css services/console/static/vendor/
	cp services/console/node_modules/uplot/LICENSE services/console/static/vendor/uPlot.LICENSE.txt
	rm -rf services/console/node_modules

schema: install ## Regenerate docs/event-schema.json from the event model
	$(BIN)/vitals schema > docs/event-schema.json

clean: ## Stop local servers and delete var/ (databases, broker data)
	-deploy/local/kafka.sh stop
	-deploy/local/postgres.sh stop
	rm -rf var

deploy-tools: ## promtool (Debian's package), helm, kubeconform and the Kubernetes schemas into .cache/ and .tools/
	deploy/local/promtool.sh install
	deploy/local/tools.sh install

# The image and the compiled build need podman, gcc and the servers: check-image has them.
DEPLOY_SLOW_TESTS := tests/deploy/test_image.py tests/deploy/test_compiled.py

# tests/deploy runs deploy/check/kubernetes.sh (helm lint, kubeconform) and promtool's
# check and test of the rules itself (test_chart.py, test_alert_rules.py). One process:
# test workers would each import the services first, which costs more than they save.
check-deploy: install deploy-tools ## The deployment kit alone, no servers needed (about a minute): helm lint, kubeconform, promtool rules and metrics, dashboards, compose
	$(BIN)/pytest tests/deploy $(addprefix --ignore=,$(DEPLOY_SLOW_TESTS)) \
		-m 'not kafka and not postgres and not e2e' -q

check-image: install deploy-tools ## The container image and the mypyc-compiled build, tests run against it (needs root, podman and gcc; starts PostgreSQL and Kafka; 15-25 minutes)
	deploy/local/with-infra.sh $(BIN)/pytest --numprocesses $(TEST_WORKERS) $(DEPLOY_SLOW_TESTS)

dashboards: install ## Regenerate the Grafana dashboards in deploy/grafana/dashboards/ from deploy/grafana/dashboards.py
	$(BIN)/python deploy/grafana/dashboards.py --out deploy/grafana/dashboards

image: ## Build the container image vitals:<version> with podman (a Debian base of its own unless IMAGE_BASE=... names one)
	deploy/image/build.sh
