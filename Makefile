# Everything bootstraps its own .venv; a fresh machine needs only python3 and make.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

COMPILED := $(VENV)/compiled
SOURCES := setup.py pyproject.toml $(wildcard src/truehop/*.py src/truehop/*/*.py)

.PHONY: run test node-deps test-pure test-compiled test-install compiled lint check-pitfalls bench soak clean sysdeps

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	TRUEHOP_MYPYC=0 $(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# truehop on its embedded default: the demo app behind the proxy on 127.0.0.1:8080.
run: $(STAMP)
	$(BIN)/truehop demo

# Debian packages used by tests that compare with them (nginx, wrk), installed when root.
sysdeps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; \
	  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	  command -v curl >/dev/null || missing="$$missing curl"; \
	  command -v openssl >/dev/null || missing="$$missing openssl"; \
	  command -v wrk >/dev/null || missing="$$missing wrk"; \
	  command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	  command -v node >/dev/null || missing="$$missing nodejs"; \
	  command -v npm >/dev/null || missing="$$missing npm"; \
	  if [ -n "$$missing" ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not install$$missing; tests needing them will skip"; \
	  fi; \
	fi

# The wheel users get (`pip install .` builds the same): the request path compiled by mypyc,
# in pip's isolated build environment, as on a user's machine. Rebuilt from scratch whenever
# a source changes: setuptools would otherwise link the object files of an earlier build.
WHEEL_DIR := $(VENV)/wheel
$(WHEEL_DIR)/.built: $(STAMP) $(SOURCES)
	rm -rf $(WHEEL_DIR) build
	$(BIN)/pip wheel -q --no-deps -w $(WHEEL_DIR) . > $(VENV)/compiled.log 2>&1 \
	  || { tail -40 $(VENV)/compiled.log; exit 1; }
	rm -rf build
	touch $@

# That wheel unpacked beside the venv rather than into src/, where its .so files would
# shadow later edits of the .py files; the compiled test run and the benchmarks use it.
$(COMPILED)/.built: $(WHEEL_DIR)/.built
	rm -rf $(COMPILED)
	$(BIN)/pip install -q --no-deps --target $(COMPILED) $(WHEEL_DIR)/truehop-*.whl
	touch $@

compiled: $(COMPILED)/.built

# The whole suite runs twice: on the sources as they are (pure Python), then on the mypyc
# build, which enforces the type hints at run time. A machine without a C compiler runs the
# first only, and says so.
test: $(STAMP) sysdeps node-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(MAKE) --no-print-directory test-pure
	@if command -v cc >/dev/null || command -v gcc >/dev/null; then \
	  $(MAKE) --no-print-directory test-compiled test-install; \
	else echo "test-compiled: no C compiler here, the mypyc build was not built or tested"; fi
	@if [ -f ../shared/tools/check-pitfalls ]; then \
	  $(PY) ../shared/tools/check-pitfalls $(BIN)/truehop; \
	else echo "check-pitfalls: ../shared not present, skipped"; fi

# The Express app of tests/e2e/test_frameworks.py: its packages, as locked, from npm.
EXPRESS := tests/e2e/frameworks/express
node-deps:
	@if command -v npm >/dev/null; then \
	  [ -d $(EXPRESS)/node_modules/express ] || (cd $(EXPRESS) && npm ci --silent --no-audit --no-fund); \
	else echo "node-deps: npm is not installed; the Express test will skip"; fi

test-pure: $(STAMP)
	$(BIN)/pytest -q -n 2 tests

# The README's install, checked: the wheel into a fresh venv (its dependencies from the
# registry), and `truehop -V` there names the compiled build.
test-install: $(WHEEL_DIR)/.built
	rm -rf $(VENV)/fresh
	$(PY) -m venv $(VENV)/fresh
	$(VENV)/fresh/bin/pip install -q $(WHEEL_DIR)/truehop-*.whl
	@v="$$($(VENV)/fresh/bin/truehop -V 2>&1)"; echo "$$v" | head -3; \
	  echo "$$v" | grep -q "build: compiled" || { echo "test-install: not the compiled build"; exit 1; }
	rm -rf $(VENV)/fresh

# -o pythonpath: the tests import truehop from the build too, not from src/
test-compiled: $(COMPILED)/.built
	PYTHONPATH=$(abspath $(COMPILED)) $(BIN)/pytest -q -n 2 -o pythonpath=$(COMPILED) tests

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy

check-pitfalls: $(STAMP)
	$(PY) ../shared/tools/check-pitfalls $(BIN)/truehop

bench: $(STAMP) compiled
	$(BIN)/python bench/proxy_vs_nginx.py

# issue 14's seven hardening cases, nginx and truehop side by side (~6 min; needs nginx).
# Options go in ARGS, e.g. `make soak ARGS="--quick --only 1,3"`; the mypyc build with
# ARGS='--truehop "env PYTHONPATH=.venv/compiled .venv/bin/python -m truehop"' after `make compiled`.
soak: $(STAMP)
	$(BIN)/python bench/soak.py $(ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info
