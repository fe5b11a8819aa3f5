# Set-up and checks. `make test` and `make demo` install everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEBS := opensm infiniband-diags libumad2sim0 ibsim-utils mstflint
# Needed by the tests only: the web view's browser tests drive this Chromium (no download),
# and hcasim show --svg FILE.png renders through rsvg-convert.
TEST_DEBS := chromium chromium-driver librsvg2-bin
STAMP := $(VENV)/.installed
NATIVE := $(VENV)/.native
# The modules src/hcasim/native.py compiles with mypyc (its MODULES), as paths.
NATIVE_SOURCES := $(shell sed -n 's/^    "\(hcasim\.[a-z0-9_.]*\)",$$/\1/p' src/hcasim/native.py \
	| tr . / | sed 's|^|src/|;s|$$|.py|')

.PHONY: install debs test-debs apt-install test lint demo bench clean

install: $(STAMP) $(NATIVE)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The MAD path compiled with mypyc (docs/fabric.md §8); without a C compiler the lab
# runs on the same modules as Python, only slower. Then the byte code of every module, as
# pip does for an installed package: an editable install gets none, and where
# PYTHONDONTWRITEBYTECODE is set every tool would compile its modules at each start.
$(NATIVE): $(STAMP) src/hcasim/native.py $(NATIVE_SOURCES)
	HCASIM_PURE_PYTHON=1 $(BIN)/python -m hcasim.cli.native build \
	  || echo "hcasim: the mypyc build failed; the lab runs on its Python sources"
	$(BIN)/python -m compileall -q src/hcasim
	touch $(NATIVE)

# Debian packages for the real tools the lab is tested against (CI runs as root).
debs:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(DEBS)"

test-debs:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(TEST_DEBS)"

apt-install:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src

test: install debs test-debs lint
	$(BIN)/python -m pytest -q tests

demo: install debs
	$(BIN)/python -m hcasim.cli.demo

bench: install debs test-debs
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build src/*.egg-info src/hcasim/_native.manifest
	find src -name '*.so' -delete
