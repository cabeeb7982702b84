# webhookd — two commands: `make run` (start on the embedded default) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint format migrate receiver bench bench-scale drills soak screenshots vendor-ui clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("webhookd needs Python 3.11+") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[server,test,bench]"
	# the Svix JS SDK that tests/test_svix_sdk.py drives (skipped without node)
	if command -v npm >/dev/null 2>&1; then cd tests/svix_js && npm ci --no-audit --no-fund --loglevel=error; fi
	touch $(STAMP)

run: $(STAMP)  ## start the API + in-process delivery workers on ./webhookd.db
	$(BIN)/webhookd serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

demo: $(STAMP)  ## a first signed webhook, delivered and verified on screen
	$(BIN)/webhookd demo

test: $(STAMP)  ## the whole suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff, strict mypy on src/, and the layer contracts (pyproject.toml)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

migrate: $(STAMP)
	$(BIN)/webhookd migrate

receiver: $(STAMP)  ## a local receiver that prints webhooks and checks their signatures
	$(BIN)/webhookd receiver --port $${RECEIVER_PORT:-9000}

bench: $(STAMP)  ## throughput/latency vs ceilings of the same run (~15 min); BENCH_ARGS="--quick"
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-scale: $(STAMP)  ## backlogs of 10k and 100k; BENCH_ARGS="--sizes 1000000" for the long run
	$(BIN)/python -m bench.scale $(BENCH_ARGS)

drills: $(STAMP)  ## fault drills (docs/RELIABILITY.md): minutes; stop and start RabbitMQ and PostgreSQL
	$(BIN)/python bench/drills/run.py $(if $(ONLY),--only $(ONLY)) $(if $(FLOOD),--flood $(FLOOD))

soak: $(STAMP)  ## 20 minutes of mixed traffic with a SIGKILL every 60 s (issue 18); not in CI
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

screenshots: $(STAMP)  ## the page tests, saving docs/screenshots/*.png
	WEBHOOKD_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/test_console_browser.py tests/test_console_endpoints_browser.py tests/test_console_events_browser.py tests/test_portal_browser.py -k sqlite

# The pages' JavaScript and CSS, from the npm registry (pinned), into the package.
HTMX_VERSION := 2.0.11
PICO_VERSION := 2.1.1
UPLOT_VERSION := 1.6.32
VENDOR := src/webhookd/ui/static/vendor
vendor-ui:  ## fetch htmx, Pico and uPlot from npm into $(VENDOR) (committed)
	rm -rf .vendor-ui && mkdir -p .vendor-ui
	cd .vendor-ui && npm pack --silent htmx.org@$(HTMX_VERSION) @picocss/pico@$(PICO_VERSION) uplot@$(UPLOT_VERSION)
	cd .vendor-ui && for f in *.tgz; do mkdir -p "$${f%.tgz}" && tar -xzf "$$f" -C "$${f%.tgz}"; done
	cp .vendor-ui/htmx.org-$(HTMX_VERSION)/package/dist/htmx.min.js $(VENDOR)/
	cp .vendor-ui/htmx.org-$(HTMX_VERSION)/package/LICENSE $(VENDOR)/htmx.LICENSE
	cp .vendor-ui/picocss-pico-$(PICO_VERSION)/package/css/pico.min.css $(VENDOR)/
	cp .vendor-ui/picocss-pico-$(PICO_VERSION)/package/LICENSE.md $(VENDOR)/pico.LICENSE.md
	cp .vendor-ui/uplot-$(UPLOT_VERSION)/package/dist/uPlot.iife.min.js .vendor-ui/uplot-$(UPLOT_VERSION)/package/dist/uPlot.min.css $(VENDOR)/
	cp .vendor-ui/uplot-$(UPLOT_VERSION)/package/LICENSE $(VENDOR)/uplot.LICENSE
	cd $(VENDOR) && sha256sum $$(ls | grep -v SHA256SUMS) > SHA256SUMS
	rm -rf .vendor-ui

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
