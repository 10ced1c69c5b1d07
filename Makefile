# Two commands for a newcomer: `make run` and `make test` (see README.md).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= var
APT_PACKAGES := chromium ffmpeg redis-server fonts-noto-cjk iproute2

LOCK := requirements.lock
# DEPS=lock installs exactly requirements.lock (hashes checked); DEPS=latest the newest
# versions pyproject.toml allows (make test-latest).
DEPS ?= lock
UV := uv==0.13.10

.PHONY: run test test-latest lock lint typecheck pytest system-packages

$(BIN)/coreview: pyproject.toml setup.py media/_fastpath.c $(LOCK)
	$(PYTHON) -m venv $(VENV)
ifeq ($(DEPS),lock)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
else
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
endif
	touch $@

# Refresh requirements.lock to the newest versions pyproject.toml allows (then run make test).
lock:
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/pip install --quiet '$(UV)'
	.venv-tools/bin/uv pip compile pyproject.toml --extra test --group pyproject.toml:build \
	  --universal --generate-hashes --python-version 3.11 --custom-compile-command 'make lock' \
	  --upgrade -o $(LOCK)

# The whole suite against the newest allowed versions, in its own venv: drift seen on purpose.
test-latest:
	rm -f .venv-latest/bin/coreview
	$(MAKE) test VENV=.venv-latest DEPS=latest

run: $(BIN)/coreview
	$(BIN)/coreview demo-data --data-dir $(DATA_DIR)
	$(BIN)/coreview serve --data-dir $(DATA_DIR)

# Debian packages the suite needs, installed only when missing.
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

lint: $(BIN)/coreview
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(BIN)/coreview
	$(BIN)/mypy

pytest: $(BIN)/coreview system-packages
	$(BIN)/pytest

test: lint typecheck pytest
