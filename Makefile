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

.PHONY: run test check test-latest lock lint typecheck pytest pytest-fast system-packages sanitize

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

# Both cores: tests with real peers (the rtc tier) run one at a time on one worker.
PYTEST_PARALLEL := -n 2 --dist loadgroup
pytest: $(BIN)/coreview system-packages
	$(BIN)/pytest $(PYTEST_PARALLEL)

test: lint typecheck pytest

# The loop while working (target: under 3 minutes): lint, types and the tests that need no
# browser, server process, real peers, network namespace or benchmark (tests/conftest.py
# marks each test's tiers from the real parts it uses).
FAST_TIER := not (browser or live or rtc or netns or bench)
pytest-fast: $(BIN)/coreview
	$(BIN)/pytest -q $(PYTEST_PARALLEL) -m "$(FAST_TIER)"

check: lint typecheck pytest-fast

# media/_fastpath.c built with AddressSanitizer and UndefinedBehaviorSanitizer into a copy
# of the tree, then its RTP parser, forwarding (fast path, uvloop) and fuzz tests run
# against it: any sanitizer report aborts the run and fails it. FUZZ_EXAMPLES bounds the fuzz.
# Left out: the flow test's share of packets forwarded in C, a figure the 3x slower build
# cannot reach (more gaps go to Python); its frames still flow in every other test here.
SANITIZE_DIR := build/sanitize
FUZZ_EXAMPLES ?= 3000
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1
sanitize: $(BIN)/coreview
	rm -rf $(SANITIZE_DIR) && mkdir -p $(SANITIZE_DIR)
	cp -r coreview media signaling recorder webui tests bench pyproject.toml $(SANITIZE_DIR)/
	rm -f $(SANITIZE_DIR)/media/_fastpath*.so
	gcc $(SANITIZE_FLAGS) -Wall -shared -fPIC \
	  -I$$($(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['include'])") \
	  media/_fastpath.c -o $(SANITIZE_DIR)/media/_fastpath$$($(BIN)/python -c \
	  "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
	cd $(SANITIZE_DIR) && \
	  export LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  PYTHONMALLOC=malloc COREVIEW_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) && \
	  $(CURDIR)/$(BIN)/python -c "import media._fastpath as f; assert '$(SANITIZE_DIR)/' in f.__file__, f.__file__" && \
	  $(CURDIR)/$(BIN)/pytest -p no:cacheprovider -q tests/test_rtpread.py tests/test_rtpwrite.py \
	  tests/test_fastpath.py tests/test_fastpath_fuzz.py tests/test_media_forwarding.py \
	  -k "(not test_media_forwarding or uvloop-fast) and not test_stamped_frames_flow"
