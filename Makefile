# Two commands for a newcomer: `make run` and `make test` (see README.md).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= var
APT_PACKAGES := chromium ffmpeg redis-server fonts-noto-cjk iproute2

.PHONY: run test lint typecheck pytest system-packages

$(BIN)/coreview: pyproject.toml setup.py media/_fastpath.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

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

typecheck: $(BIN)/coreview
	$(BIN)/mypy

pytest: $(BIN)/coreview system-packages
	$(BIN)/pytest

test: lint typecheck pytest
