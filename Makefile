# `make test` and `make demo` are self-sufficient on a fresh machine: each creates the virtual
# environments, installs every package, starts the services it needs and stops them again.

PYTHON ?= python3.11
VENV := .venv
LS_VENV := .venv-labelstudio
BIN := $(VENV)/bin
UV := $(BIN)/uv
CONSTRAINTS := requirements/constraints.txt
EXPORTERS := labelstudio uptrain clearml sagemaker
EDITABLES := -e '.[serve,demo]' $(foreach e,$(EXPORTERS),-e exporters/$(e))
# The optional C code (native/): built and installed, not editable; the tests run it and the
# Python it stands in for.
NATIVE_SOURCES := native/pyproject.toml native/setup.py $(wildcard native/otel_bridge_speedups/*)
SERVICES := scripts/services.sh

.PHONY: install install-labelstudio-server install-ui test lint typecheck pytest demo ui browser docs \
	bench clean lock collector collector-demo clean-collector

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(UV): $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

$(VENV)/.installed: $(UV) pyproject.toml $(wildcard exporters/*/pyproject.toml) requirements/test.txt $(CONSTRAINTS) $(NATIVE_SOURCES)
	@echo "Installing otel-bridge, its four sinks, its C code and the test tools into $(VENV) (about a minute on a fresh machine)"
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet -c $(CONSTRAINTS) $(EDITABLES) ./native \
		--reinstall-package otel-bridge-speedups -r requirements/test.txt
	touch $@

# The Label Studio server lives in its own environment: its Django pins must not steer ours.
$(LS_VENV)/.installed: $(UV)
	@echo "Installing the Label Studio server into $(LS_VENV)"
	$(UV) venv --quiet --allow-existing -p $(PYTHON) $(LS_VENV)
	VIRTUAL_ENV=$(LS_VENV) $(UV) pip install --quiet 'label-studio==1.23.2'
	touch $@

install: $(VENV)/.installed
install-labelstudio-server: $(LS_VENV)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check otel_bridge exporters

typecheck: install
	$(BIN)/mypy

# Starts Label Studio and moto, runs pytest with their addresses in the environment, stops them.
pytest: install install-labelstudio-server collector install-ui browser
	OTELCOL_BINARY=$(abspath $(COLLECTOR)) CHROMIUM=$(CHROMIUM) \
		$(SERVICES) run -- $(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# The demo gets an environment of its own with only what it runs: the core with its `demo` extra
# and the ClearML sink, whose offline session is the one sink that needs no account (~180 MB,
# where `make install` brings 2.1 GB of sinks and test tools). The other sinks print the command
# that installs them.
DEMO_VENV ?= .venv-demo
DEMO_ARGS ?=

$(DEMO_VENV)/.installed: $(UV) pyproject.toml exporters/clearml/pyproject.toml $(CONSTRAINTS)
	@echo "Installing otel-bridge[demo] and its ClearML sink into $(DEMO_VENV)"
	$(UV) venv --quiet --allow-existing -p $(PYTHON) $(DEMO_VENV)
	VIRTUAL_ENV=$(DEMO_VENV) $(UV) pip install --quiet -c $(CONSTRAINTS) -e '.[demo]' -e exporters/clearml
	touch $@

demo: $(DEMO_VENV)/.installed
	$(DEMO_VENV)/bin/otel-bridge demo $(DEMO_ARGS)

# `make ui`: the demo's traces in Arize Phoenix, a trace UI that runs offline in its own
# environment (~620 MB), on http://127.0.0.1:$(UI_PORT) until Ctrl-C.
UI_VENV ?= .venv-ui
UI_PORT ?= 6006
UI_DIR ?= .services/phoenix

$(UI_VENV)/.installed: $(UV) requirements/ui.txt
	@echo "Installing the Phoenix trace UI into $(UI_VENV)"
	$(UV) venv --quiet --allow-existing -p $(PYTHON) $(UI_VENV)
	VIRTUAL_ENV=$(UI_VENV) $(UV) pip install --quiet -r requirements/ui.txt
	touch $@

install-ui: $(UI_VENV)/.installed

ui: $(DEMO_VENV)/.installed $(UI_VENV)/.installed
	$(DEMO_VENV)/bin/python scripts/trace_ui.py --phoenix $(UI_VENV)/bin/phoenix \
		--otel-bridge $(DEMO_VENV)/bin/otel-bridge --port $(UI_PORT) --data-dir $(UI_DIR)

# The trace UI test drives a real headless Chromium: Debian's package (Playwright's own browser
# download cannot be fetched here), installed once with apt when it is missing.
CHROMIUM ?= /usr/bin/chromium

$(CHROMIUM):
	@echo "Installing Debian's chromium for the browser test"
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null'

browser: $(CHROMIUM)

# The README's configuration tables, written from each package's settings module.
docs: install
	$(BIN)/python scripts/config_reference.py

# Our OpenTelemetry Collector distribution (collector-config/build/manifest.yaml), built by the
# Collector Builder of the manifest's release with Go's module and build caches kept under
# $(COLLECTOR_CACHE), so a rebuild happens only when the manifest changes.
COLLECTOR_CACHE ?= .cache/collector
COLLECTOR_MANIFEST := collector-config/build/manifest.yaml
COLLECTOR := $(COLLECTOR_CACHE)/dist/otelcol-bridge
OCB_VERSION := $(shell awk '/gomod: .*otlpreceiver /{print $$NF}' $(COLLECTOR_MANIFEST))
OCB := $(COLLECTOR_CACHE)/ocb-$(OCB_VERSION)/builder
COLLECTOR_GO_ENV := GOPATH=$(abspath $(COLLECTOR_CACHE))/go GOCACHE=$(abspath $(COLLECTOR_CACHE))/go-build \
	GOFLAGS=-modcacherw GOTOOLCHAIN=local

$(OCB):
	@echo "Installing the OpenTelemetry Collector Builder $(OCB_VERSION) into $(@D)"
	$(COLLECTOR_GO_ENV) GOBIN=$(abspath $(@D)) go install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION)

$(COLLECTOR): $(COLLECTOR_MANIFEST) $(OCB)
	@echo "Building $(@F) from $(COLLECTOR_MANIFEST) (a few minutes on a fresh machine, then cached)"
	cd $(COLLECTOR_CACHE) && $(COLLECTOR_GO_ENV) $(abspath $(OCB)) --config $(abspath $(COLLECTOR_MANIFEST))
	touch $@

collector: $(COLLECTOR)

# App -> Collector (collector-config/agent.yaml) -> otel-bridge serve -> file sink, on this machine.
collector-demo: install collector
	OTELCOL_BINARY=$(abspath $(COLLECTOR)) $(BIN)/python examples/collector/run.py

clean-collector:
	rm -rf $(COLLECTOR_CACHE)

bench: install install-labelstudio-server
	$(SERVICES) run -- sh -c 'for b in bench/*.py; do $(BIN)/python $$b || exit 1; done'

# Re-pin every transitive dependency (run after changing a dependency, commit the result).
lock: $(UV)
	$(UV) pip compile --quiet -p $(PYTHON) requirements/all.in -o $(CONSTRAINTS)

clean:
	rm -rf $(VENV) $(LS_VENV) $(DEMO_VENV) $(UI_VENV) .services .pytest_cache .mypy_cache .ruff_cache
