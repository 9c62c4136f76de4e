# Everything bootstraps its own .venv; a fresh machine needs only python3 and make.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: run test lint check-pitfalls bench clean sysdeps

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
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
	  if [ -n "$$missing" ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not install$$missing; tests needing them will skip"; \
	  fi; \
	fi

test: $(STAMP) sysdeps
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/pytest -q -n 2 tests
	@if [ -f ../shared/tools/check-pitfalls ]; then \
	  $(PY) ../shared/tools/check-pitfalls $(BIN)/truehop; \
	else echo "check-pitfalls: ../shared not present, skipped"; fi

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy

check-pitfalls: $(STAMP)
	$(PY) ../shared/tools/check-pitfalls $(BIN)/truehop

bench: $(STAMP)
	$(BIN)/python bench/proxy_vs_nginx.py

clean:
	rm -rf $(VENV) build src/*.egg-info
